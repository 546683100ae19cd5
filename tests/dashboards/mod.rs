//! The Grafana dashboard (`dashboards/cmpp-gateway.json`) and the alert rules
//! (`dashboards/alerts.yml`) against the metrics they read:
//!
//! - the dashboard's structure: the `DS_PROMETHEUS` input, the `datasource`, `link`, `channel`
//!   and `instance` variables, every panel on `${datasource}`, unique ids, no overlapping panels,
//!   a unit on every panel;
//! - the alert file's shape (one group, every rule with `for`, a severity and both annotations),
//!   read by a strict line parser that refuses what it does not understand;
//! - every metric name in the expressions is in `docs/metrics.md` and in the scrape of a real
//!   running gateway, `rate`/`increase` only read counters (or histogram parts), every dashboard
//!   selector filters on `$instance` (and `$link`, `$channel` where the metric has that label);
//! - `promtool check metrics` on that scrape and `promtool check rules` on the alerts;
//! - `promtool test rules dashboards/alerts.test.yml`: the alerts fire on trouble and stay quiet
//!   on a healthy gateway.
//!
//! promtool comes with Debian's `prometheus` package; a missing promtool fails these tests.
//!
//! This file holds the tests and what they share; each module does one job and tests its reader
//! on literal input: `grafana` (the panel walk and the dashboard's structure), `rules` (the strict
//! alerts.yml reader and the rule checks), `promql` (the lexer, selectors and function
//! arguments), `exposition` (the catalog of metrics from the contract or a scrape), `checks`
//! (expressions against a catalog) and `promtool` (running it).

mod checks;
mod exposition;
mod grafana;
mod promql;
mod promtool;
mod rules;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::{get, post_json};
use checks::{filter_problems, function_problems, missing_names};
use cmpp_gateway::simulator::Behaviour;
use exposition::Catalog;
use grafana::{all_panels, dashboard_exprs, dashboard_problems, top_panels, variable_exprs};
use rules::{RuleFile, alert_exprs, parse_rules, rule_problems};
use serde_json::{Value, json};
use tokio::time::Instant;

const DASHBOARD: &str = "dashboards/cmpp-gateway.json";
const ALERTS: &str = "dashboards/alerts.yml";
const CONTRACT: &str = "docs/metrics.md";
/// The `promtool test rules` scenarios for the alerts; its `rule_files` name `alerts.yml`, which
/// promtool resolves relative to this file's directory.
const ALERT_TESTS: &str = "dashboards/alerts.test.yml";

fn repo_path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn read_repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn report(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

struct Sources {
    dashboard: Value,
    rules: RuleFile,
}

impl Sources {
    fn load() -> Sources {
        let dashboard: Value = serde_json::from_str(&read_repo_file(DASHBOARD))
            .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"));
        let rules =
            parse_rules(&read_repo_file(ALERTS)).unwrap_or_else(|e| panic!("{ALERTS}: {e}"));
        Sources { dashboard, rules }
    }

    /// The dashboard's panel and variable queries.
    fn dashboard_exprs(&self) -> Vec<(String, String)> {
        let mut exprs = dashboard_exprs(&self.dashboard);
        exprs.extend(variable_exprs(&self.dashboard));
        exprs
    }

    /// Everything that reads a metric: panels, variables and alerts.
    fn all_exprs(&self) -> Vec<(String, String)> {
        let mut exprs = self.dashboard_exprs();
        exprs.extend(alert_exprs(&self.rules));
        exprs
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_dashboard_is_importable_and_filtered_by_link_channel_and_instance() {
    let sources = Sources::load();
    report(
        &format!("{DASHBOARD} structure"),
        &dashboard_problems(&sources.dashboard),
    );
    let panels = all_panels(top_panels(&sources.dashboard));
    assert!(
        panels.iter().filter(|p| p["type"] != "row").count() >= 20,
        "the dashboard has fewer panels than the list it must show"
    );
    // Channels: held against allowed, lease losses, and each connection slot on its own.
    let exprs = dashboard_exprs(&sources.dashboard);
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|(at, e)| promql::metric_names(e).unwrap_or_else(|e| panic!("{at}: {e}")))
        .collect();
    for family in [
        "cmpp_channel_max_connections",
        "cmpp_leases_held",
        "cmpp_lease_losses_total",
    ] {
        assert!(used.contains(family), "no panel reads {family}");
    }
    for per_connection in ["cmpp_link_submits_total", "cmpp_link_window_in_flight"] {
        assert!(
            exprs
                .iter()
                .any(|(_, e)| e.contains(per_connection) && e.contains("by (channel, slot)")),
            "no panel shows {per_connection} per connection (by (channel, slot))"
        );
    }
}

#[test]
fn the_alert_rules_have_the_expected_shape() {
    let sources = Sources::load();
    report(&format!("{ALERTS} rules"), &rule_problems(&sources.rules));
    let names: BTreeSet<&str> = sources
        .rules
        .rules
        .iter()
        .map(|r| r.alert.as_str())
        .collect();
    for required in [
        "CmppLinkDown",
        "CmppLinkFlapping",
        "CmppWindowSaturated",
        "CmppOutboundBacklogGrowing",
        "CmppDeliveryRatioLow",
        "CmppUnmatchedReportsRising",
        "CmppDeadLetters",
        "CmppFlowControlSustained",
        "CmppHttpUnavailable",
        "CmppHeartbeatsMissed",
        "CmppChannelConnectionsBelowAllowed",
    ] {
        assert!(names.contains(required), "{ALERTS} has no {required} alert");
    }
}

/// The contract is the file the implementation follows: a name the dashboard uses and the
/// contract does not list is a typo in one of them.
#[test]
fn the_dashboard_and_alerts_use_only_documented_metrics_correctly() {
    let sources = Sources::load();
    let contract = Catalog::from_contract(&read_repo_file(CONTRACT));
    assert!(
        contract.families.len() >= 30,
        "{CONTRACT}: only {} metrics read from its tables",
        contract.families.len()
    );
    report(
        &format!("metrics used but not in {CONTRACT}"),
        &missing_names(&sources.all_exprs(), &contract),
    );
    report(
        "functions on the wrong metric type",
        &function_problems(&sources.all_exprs(), &contract),
    );
    report(
        "dashboard selectors without the $link/$channel/$instance filter",
        &filter_problems(&dashboard_exprs(&sources.dashboard), &contract),
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let (ok, out) = promtool::run(&["check", "rules", ALERTS], None);
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool check rules {ALERTS}:\n{out}"
    );
}

/// `promtool test rules` on synthetic series (`dashboards/alerts.test.yml`, run from the
/// repository root as an operator would): an idle and a busy healthy gateway raise nothing (not
/// even pending), and each kind of trouble fires its alert, checked through the `ALERTS` series so
/// the annotation texts can change freely.
#[test]
fn the_alerts_fire_on_trouble_and_stay_quiet_on_a_healthy_gateway() {
    let (ok, out) = promtool::run(&["test", "rules", ALERT_TESTS], None);
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
}

/// Starts the gateway, sends a message, waits for its report and scrapes `/metrics`: every
/// name the dashboard and the alerts read must be there, and promtool must find nothing to say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_exports_every_metric_the_dashboard_and_alerts_use() {
    let sources = Sources::load();
    let gateway::Stack { redis, sim, gw } = gateway::stack(Behaviour::default(), json!({})).await;

    let sent = post_json(
        gw.http,
        "/v1/messages",
        &json!({"to": "13800138000", "text": "hi"}),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let id = sent.json()["messages"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let state = get(gw.http, &format!("/v1/messages/{id}")).await.json();
        if state["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < until, "no report after 20 s: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let scrape = get(gw.http, "/metrics").await;
    gw.stop().await;
    drop((sim, redis));
    assert_eq!(scrape.status, 200, "GET /metrics: {}", scrape.body);
    let content_type = scrape.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("text/plain"),
        "GET /metrics Content-Type `{content_type}`: Prometheus wants text/plain; version=0.0.4"
    );
    let catalog = Catalog::from_exposition(&scrape.body)
        .unwrap_or_else(|e| panic!("the scrape does not parse: {e}\n{}", scrape.body));

    report(
        "metrics used by the dashboard or the alerts but missing from the scrape",
        &missing_names(&sources.all_exprs(), &catalog),
    );
    let contract = Catalog::from_contract(&read_repo_file(CONTRACT));
    let undocumented: Vec<String> = catalog
        .families
        .keys()
        .filter(|name| !contract.families.contains_key(*name))
        .map(|name| format!("{name} is exported but not listed in {CONTRACT}"))
        .collect();
    report("metrics exported but not documented", &undocumented);
    let unexported: Vec<String> = contract
        .families
        .keys()
        .filter(|name| !catalog.families.contains_key(*name))
        .map(|name| format!("{name} is listed in {CONTRACT} but not exported"))
        .collect();
    report("metrics documented but not exported", &unexported);
    report(
        "functions on the wrong metric type (as scraped)",
        &function_problems(&sources.all_exprs(), &catalog),
    );
    report(
        "dashboard selectors without the $link/$channel/$instance filter (labels as scraped)",
        &filter_problems(&dashboard_exprs(&sources.dashboard), &catalog),
    );

    let (ok, out) = promtool::run(&["check", "metrics"], Some(&scrape.body));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics on the scrape:\n{out}"
    );
}
