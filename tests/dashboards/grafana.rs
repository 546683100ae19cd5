//! The Grafana dashboard: the walk over its panels (collapsed rows included), its queries and
//! variables, and the structural checks an importable, filtered dashboard passes.

use std::collections::BTreeSet;

use serde_json::Value;

/// Every panel, rows included, with the panels nested in (collapsed) rows after their row.
pub fn all_panels(panels: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in panels {
        out.push(p);
        if let Some(nested) = p.get("panels").and_then(Value::as_array) {
            out.extend(all_panels(nested));
        }
    }
    out
}

pub fn top_panels(dashboard: &Value) -> &[Value] {
    dashboard["panels"]
        .as_array()
        .map(Vec::as_slice)
        .expect("the dashboard has a `panels` array")
}

fn title(panel: &Value) -> String {
    format!(
        "panel {} \"{}\"",
        panel["id"],
        panel["title"].as_str().unwrap_or("?")
    )
}

/// `(where, expr)` for every `targets[].expr` of every panel.
pub fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(top_panels(dashboard)) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title(panel), expr.to_owned()));
            }
        }
    }
    out
}

fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .expect("the dashboard has `templating.list`")
}

/// A query variable's PromQL: a plain string (older exports) or `{"query": …}` (newer ones).
fn variable_query(var: &Value) -> &str {
    var["query"]
        .as_str()
        .or_else(|| var["query"]["query"].as_str())
        .unwrap_or_else(|| panic!("variable {} has no query", var["name"]))
}

/// `(where, expr)` for the PromQL of the query variables (their `label_values(…)` read metrics).
pub fn variable_exprs(dashboard: &Value) -> Vec<(String, String)> {
    variables(dashboard)
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            (
                format!("variable {}", v["name"]),
                variable_query(v).to_owned(),
            )
        })
        .collect()
}

fn uses_the_datasource_variable(ds: &Value) -> bool {
    let uid = match ds {
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => ds["uid"].as_str(),
        _ => None,
    };
    matches!(uid, Some("${datasource}" | "${DS_PROMETHEUS}"))
}

/// Every structural requirement; returns one line per problem.
pub fn dashboard_problems(d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };

    let inputs = d["__inputs"].as_array().cloned().unwrap_or_default();
    check(
        inputs.iter().any(|i| {
            i["name"] == "DS_PROMETHEUS"
                && i["type"] == "datasource"
                && i["pluginId"] == "prometheus"
        }),
        "no `__inputs` entry DS_PROMETHEUS (type datasource, pluginId prometheus)".into(),
    );
    check(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        format!("schemaVersion {} (need 39 or later)", d["schemaVersion"]),
    );
    check(d["uid"].is_string(), "no dashboard uid".into());
    check(d["title"].is_string(), "no dashboard title".into());

    let vars = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).cloned();
    match var("datasource") {
        Some(v) => check(
            v["type"] == "datasource" && v["query"] == "prometheus",
            format!("variable datasource is not of type datasource with query prometheus: {v}"),
        ),
        None => check(false, "no `datasource` variable".into()),
    }
    // In this order: a variable's query may only name the variables before it.
    let order = ["link", "channel", "instance"];
    for (name, query) in order.iter().zip([
        "label_values(cmpp_link_up, link)",
        // Every configured channel, also one no instance holds a slot of.
        "label_values(cmpp_channel_max_connections, channel)",
        "label_values(cmpp_link_up{link=~\"$link\",channel=~\"$channel\"}, instance)",
    ]) {
        let Some(v) = var(name) else {
            check(false, format!("no `{name}` variable"));
            continue;
        };
        check(
            v["type"] == "query",
            format!("variable {name} is not a query"),
        );
        let q = v["query"]
            .as_str()
            .or_else(|| v["query"]["query"].as_str())
            .unwrap_or("");
        check(
            q == query,
            format!("variable {name} queries `{q}`, want `{query}`"),
        );
        check(v["multi"] == true, format!("variable {name} is not multi"));
        check(
            v["includeAll"] == true,
            format!("variable {name} does not include All"),
        );
        check(
            uses_the_datasource_variable(&v["datasource"]),
            format!("variable {name} is not on ${{datasource}}"),
        );
    }
    let position = |name: &str| vars.iter().position(|v| v["name"] == name);
    let positions: Vec<Option<usize>> = order.iter().map(|n| position(n)).collect();
    check(
        positions.windows(2).all(|w| w[0] < w[1]),
        format!("variables not in the order {order:?}"),
    );

    let Some(panels) = d["panels"].as_array() else {
        check(false, "no `panels` array".into());
        return problems;
    };
    let mut ids = BTreeSet::new();
    for p in all_panels(panels) {
        let name = title(p);
        match p["id"].as_u64() {
            Some(id) => check(ids.insert(id), format!("{name}: id {id} used twice")),
            None => check(false, format!("{name}: no numeric id")),
        }
        let kind = p["type"].as_str().unwrap_or("");
        check(!kind.is_empty(), format!("{name}: no type"));
        check(p["title"].is_string(), format!("{name}: no title"));
        let g = &p["gridPos"];
        let fits = ["x", "y", "w", "h"].iter().all(|k| g[k].is_u64())
            && g["w"].as_u64() > Some(0)
            && g["h"].as_u64() > Some(0)
            && g["x"].as_u64().unwrap_or(99) + g["w"].as_u64().unwrap_or(99) <= 24;
        check(
            fits,
            format!("{name}: gridPos {g} is not within 24 columns"),
        );
        if kind == "row" {
            continue;
        }
        check(
            uses_the_datasource_variable(&p["datasource"]),
            format!(
                "{name}: datasource {} is not ${{datasource}}",
                p["datasource"]
            ),
        );
        check(
            p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            format!("{name}: no fieldConfig.defaults.unit"),
        );
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        check(!targets.is_empty(), format!("{name}: no targets"));
        let mut refs = BTreeSet::new();
        for t in &targets {
            check(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                format!("{name}: a target without expr"),
            );
            check(
                t["refId"]
                    .as_str()
                    .is_some_and(|r| refs.insert(r.to_owned())),
                format!("{name}: missing or repeated refId {}", t["refId"]),
            );
            if !t["datasource"].is_null() {
                check(
                    uses_the_datasource_variable(&t["datasource"]),
                    format!("{name}: a target's datasource is not ${{datasource}}"),
                );
            }
        }
    }

    // No two panels of one layout overlap: the top level (expanded rows), and the panels inside
    // each collapsed row on their own.
    let mut layouts: Vec<Vec<&Value>> = vec![panels.iter().collect()];
    for p in panels {
        if let Some(nested) = p["panels"].as_array().filter(|n| !n.is_empty()) {
            layouts.push(nested.iter().collect());
        }
    }
    for layout in layouts {
        for (i, a) in layout.iter().enumerate() {
            for b in &layout[i + 1..] {
                if overlap(&a["gridPos"], &b["gridPos"]) {
                    problems.push(format!("{} overlaps {}", title(a), title(b)));
                }
            }
        }
    }
    problems
}

fn overlap(a: &Value, b: &Value) -> bool {
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    n(a, "x") < n(b, "x") + n(b, "w")
        && n(b, "x") < n(a, "x") + n(a, "w")
        && n(a, "y") < n(b, "y") + n(b, "h")
        && n(b, "y") < n(a, "y") + n(a, "h")
}

// ---------------------------------------------------------------------------------------------
// The walk itself, on literal input.

#[test]
fn the_dashboard_walk_reaches_panels_inside_collapsed_rows() {
    use serde_json::json;

    let d = json!({"panels": [
        {"id": 1, "type": "row", "title": "open", "panels": []},
        {"id": 2, "type": "stat", "title": "top", "targets": [{"expr": "cmpp_a"}]},
        {"id": 3, "type": "row", "title": "closed", "collapsed": true, "panels": [
            {"id": 4, "type": "timeseries", "title": "inner",
             "targets": [{"expr": "cmpp_b"}, {"expr": "cmpp_c"}]}
        ]}
    ]});
    let exprs: Vec<String> = dashboard_exprs(&d).into_iter().map(|(_, e)| e).collect();
    assert_eq!(exprs, ["cmpp_a", "cmpp_b", "cmpp_c"]);
    assert_eq!(all_panels(top_panels(&d)).len(), 4);
    let problems = dashboard_problems(&d);
    assert!(
        problems.iter().any(|p| p.contains("DS_PROMETHEUS")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("no `link` variable")),
        "{problems:?}"
    );
}
