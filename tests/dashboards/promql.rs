//! PromQL: just enough lexing to find metric names, their label matchers and the functions
//! around them.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    /// A Grafana variable: `$link`, `$__rate_interval`, `${datasource}`.
    Var(String),
    Punct(String),
}

pub fn lex(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            // A PromQL comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!("unterminated string in `{expr}`"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' && c != '`' {
                    let Some(&e) = chars.get(i) else {
                        return Err(format!("unterminated string in `{expr}`"));
                    };
                    i += 1;
                    s.push(e);
                } else {
                    s.push(d);
                }
            }
            toks.push(Tok::Str(s));
        } else if c == '$' {
            let start = i;
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
            }
            toks.push(Tok::Var(chars[start..i.min(chars.len())].iter().collect()));
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["=~", "!~", "!=", "==", ">=", "<="].contains(&two.as_str()) {
                toks.push(Tok::Punct(two));
                i += 2;
            } else if "(){}[],+-*/%^<>=@".contains(c) {
                toks.push(Tok::Punct(c.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected `{c}` in `{expr}`"));
            }
        }
    }
    Ok(toks)
}

pub fn punct(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Punct(q)) if q == p)
}

#[derive(Debug)]
pub struct Selector {
    pub metric: String,
    /// `(label, op, value)`.
    pub matchers: Vec<(String, String, String)>,
}

/// Every `cmpp_…` selector with its matchers.
pub fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let toks = lex(expr)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Tok::Ident(name) = &toks[i] else {
            i += 1;
            continue;
        };
        i += 1;
        if !name.starts_with("cmpp_") {
            continue;
        }
        let mut matchers = Vec::new();
        if punct(toks.get(i), "{") {
            i += 1;
            loop {
                if punct(toks.get(i), "}") {
                    i += 1;
                    break;
                }
                match (toks.get(i), toks.get(i + 1), toks.get(i + 2)) {
                    (Some(Tok::Ident(label)), Some(Tok::Punct(op)), Some(Tok::Str(v)))
                        if ["=", "!=", "=~", "!~"].contains(&op.as_str()) =>
                    {
                        matchers.push((label.clone(), op.clone(), v.clone()));
                        i += 3;
                    }
                    _ => return Err(format!("a label matcher I cannot read in `{expr}`")),
                }
                if punct(toks.get(i), ",") {
                    i += 1;
                } else if !punct(toks.get(i), "}") {
                    return Err(format!("a label matcher list I cannot read in `{expr}`"));
                }
            }
        }
        out.push(Selector {
            metric: name.clone(),
            matchers,
        });
    }
    Ok(out)
}

/// The metric names an expression reads (identifiers starting with `cmpp_`, outside strings).
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    Ok(selectors(expr)?.into_iter().map(|s| s.metric).collect())
}

/// `(function, metric)` for every `f(cmpp_…` call of the range-vector functions.
pub fn function_arguments(expr: &str) -> Result<Vec<(String, String)>, String> {
    let toks = lex(expr)?;
    let mut out = Vec::new();
    for w in toks.windows(3) {
        if let (Tok::Ident(f), true, Tok::Ident(m)) = (&w[0], punct(Some(&w[1]), "("), &w[2]) {
            if m.starts_with("cmpp_") {
                out.push((f.clone(), m.clone()));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The reader itself, on literal input.

#[test]
fn the_promql_reader_finds_names_matchers_and_ranges() {
    use crate::dashboards::checks::{filter_problems, function_problems};
    use crate::dashboards::exposition::Catalog;
    use crate::dashboards::{CONTRACT, read_repo_file};

    let expr = r#"histogram_quantile(0.99, sum by (le, link) (rate(cmpp_link_submit_rtt_seconds_bucket{link=~"$link",channel=~"$channel",instance=~"$instance"}[$__rate_interval])))
      / on() group_left up{job="cmpp_not_a_metric"} # cmpp_in_a_comment"#;
    let names: Vec<String> = metric_names(expr).unwrap().into_iter().collect();
    assert_eq!(names, ["cmpp_link_submit_rtt_seconds_bucket"]);
    let sels = selectors(expr).unwrap();
    assert_eq!(
        sels[0].matchers,
        [
            ("link".into(), "=~".into(), "$link".into()),
            ("channel".into(), "=~".into(), "$channel".into()),
            ("instance".into(), "=~".into(), "$instance".into())
        ]
    );
    let contract = Catalog::from_contract(&read_repo_file(CONTRACT));
    let one = |e: &str| vec![("p".to_owned(), e.to_owned())];
    assert!(filter_problems(&one(expr), &contract).is_empty());
    assert_eq!(
        filter_problems(
            &one(r#"cmpp_link_up{channel=~"$channel",instance=~"$instance"}"#),
            &contract
        ),
        ["p: cmpp_link_up without link=~\"$link\""]
    );
    assert_eq!(
        filter_problems(
            &one(r#"cmpp_link_up{link=~"$link",instance=~"$instance"}"#),
            &contract
        ),
        ["p: cmpp_link_up without channel=~\"$channel\""]
    );
    assert_eq!(
        filter_problems(
            &one(r#"sum(cmpp_leases_held{instance=~"$instance"})"#),
            &contract
        ),
        ["p: cmpp_leases_held without channel=~\"$channel\""]
    );
    assert_eq!(
        filter_problems(
            &one(r#"sum(rate(cmpp_reports_total{instance=~"$instance"}[5m]))"#),
            &contract
        )
        .len(),
        1
    );
    assert!(
        filter_problems(
            &one(r#"max(cmpp_stream_length{instance=~"$instance"})"#),
            &contract
        )
        .is_empty()
    );
    assert_eq!(
        function_problems(
            &one("histogram_quantile(0.5, rate(cmpp_link_submit_rtt_seconds_bucket[5m]))"),
            &contract
        )
        .len(),
        1
    );
    assert!(selectors(r#"cmpp_link_up{link=}"#).is_err());
    assert!(lex(r#"cmpp_link_up{link="x}"#).is_err());
}
