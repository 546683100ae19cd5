//! Checks of expressions against a catalog: names it lacks, functions on the wrong metric type,
//! dashboard selectors without the `$link`/`$channel`/`$instance` filter.

use std::collections::{BTreeMap, BTreeSet};

use crate::dashboards::exposition::Catalog;
use crate::dashboards::promql::{Tok, function_arguments, lex, metric_names, punct, selectors};

/// Names read by `exprs` that `catalog` does not have: `name (where, where…)`.
pub fn missing_names(exprs: &[(String, String)], catalog: &Catalog) -> Vec<String> {
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (at, expr) in exprs {
        let names = metric_names(expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        for name in names {
            if catalog.resolve(&name).is_none() {
                missing.entry(name).or_default().insert(at.clone());
            }
        }
    }
    missing
        .into_iter()
        .map(|(name, at)| format!("{name} ({})", at.into_iter().collect::<Vec<_>>().join(", ")))
        .collect()
}

/// `rate`/`irate`/`increase` on counters (or histogram/summary parts) only; `delta`/`deriv`
/// on gauges only; `histogram_quantile` over `_bucket` with `le` kept.
pub fn function_problems(exprs: &[(String, String)], catalog: &Catalog) -> Vec<String> {
    let mut problems = Vec::new();
    for (at, expr) in exprs {
        let calls = function_arguments(expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        for (f, metric) in calls {
            let Some(kind) = catalog.kind(&metric) else {
                continue; // reported by missing_names
            };
            let part = metric != catalog.resolve(&metric).unwrap_or_default();
            let ok = match f.as_str() {
                "rate" | "irate" | "increase" | "resets" => kind == "counter" || part,
                "delta" | "idelta" | "deriv" | "predict_linear" => kind == "gauge",
                _ => true,
            };
            if !ok {
                problems.push(format!("{at}: {f}() of {metric}, a {kind}"));
            }
        }
        if expr.contains("histogram_quantile") {
            let toks = lex(expr).unwrap_or_else(|e| panic!("{at}: {e}"));
            let keeps_le = toks.windows(2).enumerate().any(|(i, w)| {
                w[0] == Tok::Ident("by".into())
                    && punct(Some(&w[1]), "(")
                    && toks[i + 2..]
                        .iter()
                        .take_while(|t| !punct(Some(t), ")"))
                        .any(|t| *t == Tok::Ident("le".into()))
            });
            let buckets = metric_names(expr)
                .unwrap_or_default()
                .iter()
                .any(|m| m.ends_with("_bucket"));
            if !keeps_le || !buckets {
                problems.push(format!(
                    "{at}: histogram_quantile needs rate(…_bucket) summed `by (le, …)`"
                ));
            }
        }
    }
    problems
}

/// Every dashboard selector filters on `instance=~"$instance"`, on `link=~"$link"` when the
/// metric has a `link` label and on `channel=~"$channel"` when it has a `channel` label; every
/// range is `$__rate_interval` (or `$__range` for stats).
pub fn filter_problems(exprs: &[(String, String)], catalog: &Catalog) -> Vec<String> {
    let mut problems = Vec::new();
    for (at, expr) in exprs {
        let sels = selectors(expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        for s in sels {
            let has = |label: &str, var: &str| {
                s.matchers
                    .iter()
                    .any(|(l, op, v)| l == label && op == "=~" && v == var)
            };
            if !has("instance", "$instance") {
                problems.push(format!(
                    "{at}: {} without instance=~\"$instance\"",
                    s.metric
                ));
            }
            for label in ["link", "channel"] {
                let var = format!("${label}");
                if catalog.has_label(&s.metric, label) && !has(label, &var) {
                    problems.push(format!("{at}: {} without {label}=~\"{var}\"", s.metric));
                }
            }
        }
        let toks = lex(expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        for (i, t) in toks.iter().enumerate() {
            if punct(Some(t), "[") {
                let range = toks.get(i + 1);
                let ok = matches!(range, Some(Tok::Var(v)) if v == "$__rate_interval" || v == "$__range")
                    && punct(toks.get(i + 2), "]");
                if !ok {
                    problems.push(format!(
                        "{at}: a range other than [$__rate_interval] or [$__range]: {range:?}"
                    ));
                }
            }
        }
    }
    problems
}
