//! What a set of metrics looks like: from docs/metrics.md or from a scrape (the text exposition
//! format).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub families: BTreeMap<String, Family>,
}

impl Catalog {
    /// The tables of docs/metrics.md: `| \`name\` | type | labels | meaning |`.
    pub fn from_contract(md: &str) -> Catalog {
        let mut families = BTreeMap::new();
        for line in md.lines() {
            let Some(rest) = line.strip_prefix("| `cmpp_") else {
                continue;
            };
            let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
            assert!(
                cells.len() >= 3,
                "a metrics table row I cannot read: {line}"
            );
            let name = format!("cmpp_{}", cells[0].trim_end_matches('`'));
            let labels = cells[2]
                .split(',')
                .map(|l| l.trim().trim_matches('`'))
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            families.insert(
                name,
                Family {
                    kind: cells[1].to_owned(),
                    labels,
                },
            );
        }
        Catalog { families }
    }

    /// The text exposition format: families from `# TYPE` lines, label names from the samples.
    pub fn from_exposition(text: &str) -> Result<Catalog, String> {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        let mut sample_labels: Vec<(String, BTreeSet<String>)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let words: Vec<&str> = comment.split_whitespace().collect();
                if words.first() == Some(&"TYPE") {
                    let [_, name, kind] = words[..] else {
                        return Err(format!("line {n}: a TYPE line I cannot read: {line}"));
                    };
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(format!("line {n}: unknown type {kind}"));
                    }
                    let family = Family {
                        kind: kind.to_owned(),
                        labels: BTreeSet::new(),
                    };
                    if families.insert(name.to_owned(), family).is_some() {
                        return Err(format!("line {n}: a second TYPE line for {name}"));
                    }
                }
                continue;
            }
            let (name, labels) = parse_sample(line).map_err(|e| format!("line {n}: {e}"))?;
            sample_labels.push((name, labels));
        }
        for (name, labels) in sample_labels {
            let family = resolve_in(&families, &name).unwrap_or(name);
            if let Some(f) = families.get_mut(&family) {
                f.labels
                    .extend(labels.into_iter().filter(|l| l != "le" && l != "quantile"));
            }
        }
        Ok(Catalog { families })
    }

    /// The family a name used in PromQL reads: itself, or the histogram (or summary) that a
    /// `_bucket`/`_sum`/`_count` name belongs to.
    pub fn resolve(&self, name: &str) -> Option<String> {
        resolve_in(&self.families, name)
    }

    pub fn kind(&self, name: &str) -> Option<&str> {
        self.resolve(name)
            .and_then(|f| self.families.get(&f))
            .map(|f| f.kind.as_str())
    }

    pub fn has_label(&self, name: &str, label: &str) -> bool {
        self.resolve(name)
            .and_then(|f| self.families.get(&f))
            .is_some_and(|f| f.labels.contains(label))
    }
}

fn resolve_in(families: &BTreeMap<String, Family>, name: &str) -> Option<String> {
    if families.contains_key(name) {
        return Some(name.to_owned());
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|f| kinds.contains(&f.kind.as_str()))
            {
                return Some(base.to_owned());
            }
        }
    }
    None
}

/// `name{label="value",…} value [timestamp]` → the name and the label names.
fn parse_sample(line: &str) -> Result<(String, BTreeSet<String>), String> {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("a sample without a value: {line}"))?;
    let name = &line[..end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("a sample name I cannot read: {line}"));
    }
    let mut labels = BTreeSet::new();
    let mut rest = &line[end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let close = loop {
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            match chars.peek() {
                Some((at, '}')) => break *at,
                None => return Err(format!("unterminated labels: {line}")),
                _ => {}
            }
            let mut label = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                label.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("a label value without quotes: {line}"));
            }
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => {}
                }
            }
            if !closed || label.is_empty() {
                return Err(format!("a label I cannot read: {line}"));
            }
            labels.insert(label);
        };
        rest = &body[close + 1..];
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("a sample without a value: {line}"))?;
    let numeric = value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value);
    if !numeric {
        return Err(format!("a sample value that is not a number: {line}"));
    }
    Ok((name.to_owned(), labels))
}

// ---------------------------------------------------------------------------------------------
// The readers themselves, on literal input.

const SAMPLE_EXPOSITION: &str = r#"# HELP cmpp_link_up 1 while the CMPP link is logged in
# TYPE cmpp_link_up gauge
cmpp_link_up{link="900001"} 1
# HELP cmpp_link_submit_rtt_seconds SUBMIT to SUBMIT_RESP time
# TYPE cmpp_link_submit_rtt_seconds histogram
cmpp_link_submit_rtt_seconds_bucket{link="900001",le="0.001"} 3
cmpp_link_submit_rtt_seconds_bucket{link="900001",le="+Inf"} 4
cmpp_link_submit_rtt_seconds_sum{link="900001"} 0.0042
cmpp_link_submit_rtt_seconds_count{link="900001"} 4
# HELP cmpp_reports_total Status reports written, by Stat
# TYPE cmpp_reports_total counter
cmpp_reports_total{stat="DELIVRD"} 1
cmpp_reports_total{stat="odd \"one\", {x}"} 0
# TYPE cmpp_start_time_seconds gauge
cmpp_start_time_seconds 1.7e+09
# TYPE cmpp_things_count counter
cmpp_things_count 2
"#;

#[test]
fn the_exposition_reader_finds_families_labels_and_histogram_parts() {
    use crate::dashboards::checks::{function_problems, missing_names};

    let c = Catalog::from_exposition(SAMPLE_EXPOSITION).unwrap();
    let names: Vec<&str> = c.families.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "cmpp_link_submit_rtt_seconds",
            "cmpp_link_up",
            "cmpp_reports_total",
            "cmpp_start_time_seconds",
            "cmpp_things_count",
        ]
    );
    assert_eq!(
        c.resolve("cmpp_link_submit_rtt_seconds_bucket").as_deref(),
        Some("cmpp_link_submit_rtt_seconds")
    );
    assert_eq!(
        c.resolve("cmpp_link_submit_rtt_seconds_count").as_deref(),
        Some("cmpp_link_submit_rtt_seconds")
    );
    // `_count` is stripped only from a histogram: a counter named so is itself.
    assert_eq!(
        c.resolve("cmpp_things_count").as_deref(),
        Some("cmpp_things_count")
    );
    assert_eq!(c.resolve("cmpp_reports_total_bucket"), None);
    assert_eq!(c.resolve("cmpp_link_up_bucket"), None);
    assert!(c.has_label("cmpp_link_submit_rtt_seconds_bucket", "link"));
    assert!(!c.has_label("cmpp_link_submit_rtt_seconds_bucket", "le"));
    assert!(c.has_label("cmpp_reports_total", "stat"));
    assert!(!c.has_label("cmpp_start_time_seconds", "link"));
    assert_eq!(c.kind("cmpp_reports_total"), Some("counter"));

    let exprs = vec![
        (
            "a".to_owned(),
            "sum by (le) (rate(cmpp_link_submit_rtt_seconds_bucket[5m])) + cmpp_nope_total"
                .to_owned(),
        ),
        (
            "b".to_owned(),
            "rate(cmpp_link_up[5m]) + cmpp_nope_total".to_owned(),
        ),
    ];
    assert_eq!(missing_names(&exprs, &c), ["cmpp_nope_total (a, b)"]);
    let problems = function_problems(&exprs, &c);
    assert_eq!(problems, ["b: rate() of cmpp_link_up, a gauge"]);

    for bad in [
        "cmpp_x{a=\"1\"\n",
        "cmpp_x{a=1} 2\n",
        "cmpp_x\n",
        "cmpp_x one\n",
        "# TYPE cmpp_x gauge\n# TYPE cmpp_x gauge\n",
        "# TYPE cmpp_x sometimes\n",
    ] {
        assert!(Catalog::from_exposition(bad).is_err(), "accepted {bad:?}");
    }
}
