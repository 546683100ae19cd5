//! The alert rules: a strict reader of the one shape alerts.yml is written in, and the checks of
//! the rules it reads.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Rule {
    pub line: usize,
    pub alert: String,
    pub expr: String,
    pub for_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct RuleFile {
    pub group: String,
    pub rules: Vec<Rule>,
}

/// Reads this shape and nothing else (comments and blank lines anywhere outside blocks):
///
/// ```text
/// groups:
///   - name: NAME
///     rules:
///       - alert: NAME
///         expr: PLAIN | `|` or `|-` block
///         for: DURATION
///         labels:
///           KEY: PLAIN | "DOUBLE QUOTED"
///         annotations:
///           KEY: PLAIN | "DOUBLE QUOTED" | `|` or `|-` block
/// ```
pub fn parse_rules(text: &str) -> Result<RuleFile, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut group: Option<String> = None;
    let mut rules: Vec<Rule> = Vec::new();
    // Where we are: 0 nothing yet, 1 after `groups:`, 2 in the group, 3 after `rules:`,
    // 4 in a rule, 5 in its labels, 6 in its annotations.
    let mut state = 0;
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let raw = lines[i];
        i += 1;
        if raw.contains('\t') {
            return Err(format!("line {n}: a tab"));
        }
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = raw.len() - content.len();
        let content = content.trim_end();
        let err = |what: &str| Err(format!("line {n}: {what}: `{raw}`"));
        match (indent, content) {
            (0, "groups:") if state == 0 => state = 1,
            (2, c) if state >= 1 && c.starts_with("- name:") => {
                if group.is_some() {
                    return err("a second group (one group only)");
                }
                let name = scalar(&c["- name:".len()..], n)?;
                group = Some(name);
                state = 2;
            }
            (4, "rules:") if state == 2 => state = 3,
            (6, c) if state >= 3 && c.starts_with("- alert:") => {
                let alert = scalar(&c["- alert:".len()..], n)?;
                rules.push(Rule {
                    line: n,
                    alert,
                    ..Rule::default()
                });
                state = 4;
            }
            (8, c) if state >= 4 => {
                let rule = rules.last_mut().expect("state 4 has a rule");
                let (key, rest) = c
                    .split_once(':')
                    .ok_or_else(|| format!("line {n}: not `key: value`: `{raw}`"))?;
                match key {
                    "expr" if rule.expr.is_empty() => {
                        rule.expr = value(rest, &lines, &mut i, indent, n, false)?;
                        state = 4;
                    }
                    "for" if rule.for_.is_empty() => {
                        rule.for_ = scalar(rest, n)?;
                        state = 4;
                    }
                    "labels" if rest.trim().is_empty() && rule.labels.is_empty() => state = 5,
                    "annotations" if rest.trim().is_empty() && rule.annotations.is_empty() => {
                        state = 6
                    }
                    _ => return err("an unknown or repeated rule key"),
                }
            }
            (10, c) if state == 5 || state == 6 => {
                let (key, rest) = c
                    .split_once(':')
                    .ok_or_else(|| format!("line {n}: not `key: value`: `{raw}`"))?;
                if key.is_empty()
                    || !key
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                {
                    return err("a label or annotation name that is not [A-Za-z0-9_]");
                }
                let v = value(rest, &lines, &mut i, indent, n, state == 6)?;
                let rule = rules.last_mut().expect("state 5/6 has a rule");
                let map = if state == 5 {
                    &mut rule.labels
                } else {
                    &mut rule.annotations
                };
                if map.insert(key.to_owned(), v).is_some() {
                    return err("a repeated key");
                }
            }
            _ => return err("a line this reader does not understand"),
        }
    }
    let group = group.ok_or("no group")?;
    Ok(RuleFile { group, rules })
}

/// A one-line value: plain, or double-quoted with `\"` and `\\` escapes.
fn scalar(rest: &str, n: usize) -> Result<String, String> {
    let v = rest.trim();
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(format!("line {n}: no space after the colon"));
    }
    if v.is_empty() {
        return Err(format!("line {n}: an empty value"));
    }
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("line {n}: a double-quoted value must end the line"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => out.push(e),
                    other => return Err(format!("line {n}: unsupported escape \\{other:?}")),
                },
                '"' => {
                    return Err(format!(
                        "line {n}: an unescaped quote inside a quoted value"
                    ));
                }
                c => out.push(c),
            }
        }
        return Ok(out);
    }
    if v.starts_with([
        '\'', '>', '|', '{', '[', '&', '*', '!', '%', '@', '`', '-', '?',
    ]) {
        return Err(format!(
            "line {n}: `{v}`: a value shape this reader does not understand"
        ));
    }
    if v.contains(": ") || v.contains(" #") || v.ends_with(':') {
        return Err(format!(
            "line {n}: `{v}`: a plain value with `: ` or ` #` (quote it or use a block)"
        ));
    }
    Ok(v.to_owned())
}

/// A value that may also be a `|` / `|-` block: the following lines indented deeper than the
/// key, with the first line's indentation removed.
fn value(
    rest: &str,
    lines: &[&str],
    i: &mut usize,
    key_indent: usize,
    n: usize,
    quoted_ok: bool,
) -> Result<String, String> {
    let head = rest.trim();
    if head != "|" && head != "|-" {
        if head.starts_with('"') && !quoted_ok {
            return Err(format!(
                "line {n}: a quoted expr (write it plain or as a `|` block)"
            ));
        }
        return scalar(rest, n);
    }
    let mut block: Vec<&str> = Vec::new();
    let mut block_indent: Option<usize> = None;
    while *i < lines.len() {
        let line = lines[*i];
        let content = line.trim_start();
        if content.is_empty() {
            block.push("");
            *i += 1;
            continue;
        }
        let indent = line.len() - content.len();
        if indent <= key_indent {
            break;
        }
        if line.contains('\t') {
            return Err(format!("line {}: a tab", *i + 1));
        }
        let bi = *block_indent.get_or_insert(indent);
        if indent < bi {
            return Err(format!(
                "line {}: less indented than the block's first line",
                *i + 1
            ));
        }
        block.push(&line[bi..]);
        *i += 1;
    }
    while block.last() == Some(&"") {
        block.pop();
    }
    if block.is_empty() {
        return Err(format!("line {n}: an empty block"));
    }
    let mut text = block.join("\n");
    if head == "|" {
        text.push('\n');
    }
    Ok(text)
}

pub fn rule_problems(file: &RuleFile) -> Vec<String> {
    let mut problems = Vec::new();
    if file.group != "cmpp-gateway" {
        problems.push(format!("the group is `{}`, not cmpp-gateway", file.group));
    }
    if file.rules.is_empty() {
        problems.push("no rules".into());
    }
    let mut names = BTreeSet::new();
    for r in &file.rules {
        let at = format!("{} (line {})", r.alert, r.line);
        if !names.insert(r.alert.clone()) {
            problems.push(format!("{at}: alert name used twice"));
        }
        if r.expr.trim().is_empty() {
            problems.push(format!("{at}: no expr"));
        }
        let digits = r.for_.trim_end_matches(|c: char| "smhdwy".contains(c));
        if digits.is_empty()
            || digits.len() == r.for_.len()
            || !digits.chars().all(|c| c.is_ascii_digit())
        {
            problems.push(format!("{at}: `for: {}` is not a duration", r.for_));
        }
        match r.labels.get("severity").map(String::as_str) {
            Some("page" | "ticket") => {}
            other => problems.push(format!("{at}: severity {other:?}, want page or ticket")),
        }
        for key in ["summary", "description"] {
            if r.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{at}: no {key} annotation"));
            }
        }
    }
    problems
}

pub fn alert_exprs(file: &RuleFile) -> Vec<(String, String)> {
    file.rules
        .iter()
        .map(|r| (format!("alert {}", r.alert), r.expr.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The reader itself, on literal input.

#[test]
fn the_rule_reader_is_strict() {
    let good = r#"# comment
groups:
  - name: cmpp-gateway
    rules:
      - alert: A
        expr: cmpp_link_up == 0
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "link {{ $labels.link }} \"down\""
          description: |-
            first line

            third line
      - alert: B
        expr: |
          sum(rate(cmpp_x_total[5m]))
            > 0
        for: 10m
        labels:
          severity: ticket
        annotations:
          summary: plain text
          description: "d"
"#;
    let file = parse_rules(good).unwrap();
    assert_eq!(file.group, "cmpp-gateway");
    assert_eq!(file.rules.len(), 2);
    assert_eq!(file.rules[0].expr, "cmpp_link_up == 0");
    assert_eq!(
        file.rules[0].annotations["summary"],
        "link {{ $labels.link }} \"down\""
    );
    assert_eq!(
        file.rules[0].annotations["description"],
        "first line\n\nthird line"
    );
    assert_eq!(file.rules[1].expr, "sum(rate(cmpp_x_total[5m]))\n  > 0\n");
    assert_eq!(file.rules[1].for_, "10m");
    assert!(
        rule_problems(&file).is_empty(),
        "{:?}",
        rule_problems(&file)
    );

    for (what, bad) in [
        ("folded expr", good.replace("expr: |\n", "expr: >\n")),
        (
            "quoted expr",
            good.replace("expr: cmpp_link_up == 0", "expr: \"cmpp_link_up == 0\""),
        ),
        (
            "single quotes",
            good.replace("summary: plain text", "summary: 'plain text'"),
        ),
        (
            "flow mapping",
            good.replace("severity: page", "severity: {a: b}"),
        ),
        (
            "unknown key",
            good.replace("for: 2m", "for: 2m\n        keep_firing_for: 5m"),
        ),
        ("record rule", good.replace("- alert: B", "- record: B")),
        ("tab", good.replace("for: 2m", "for:\t2m")),
        (
            "odd indent",
            good.replace("        for: 2m", "         for: 2m"),
        ),
        (
            "repeated key",
            good.replace("for: 2m", "for: 2m\n        for: 3m"),
        ),
        ("second group", format!("{good}  - name: other\n")),
        (
            "comment after a value",
            good.replace("for: 2m", "for: 2m # two"),
        ),
        (
            "colon in a plain value",
            good.replace("summary: plain text", "summary: plain: text"),
        ),
    ] {
        assert_ne!(bad, good, "{what}: the replacement did not apply");
        assert!(parse_rules(&bad).is_err(), "{what}: accepted");
    }

    let missing =
        parse_rules(&good.replace("          severity: ticket\n", "          team: x\n")).unwrap();
    assert_eq!(rule_problems(&missing).len(), 1);
    let no_for = parse_rules(&good.replace("for: 10m", "for: soon")).unwrap();
    assert_eq!(rule_problems(&no_for).len(), 1);
}
