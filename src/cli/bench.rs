//! `cmpp-gateway bench`: the benchmarks whose numbers README reports.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Submits per second and RTT through one link against the in-process simulator.
    Link(LinkBenchArgs),
    /// Messages per second from the outbound stream to SUBMIT_RESP, Redis in the loop.
    Drain(DrainBenchArgs),
    /// HTTP sends per second with wrk: an ingress-only gateway, then the whole gateway draining.
    Ingest(IngestBenchArgs),
    /// The full loop: outbound stream to final report, with enqueue-to-report latency; MO/s.
    Loop(LoopBenchArgs),
    /// The gateway against each hostile ISMG behaviour (copies per message, logins), then the
    /// logins per minute of a link whose ISMG drops every connection a second after login.
    Hostile(HostileBenchArgs),
    /// One account with 8 connections over two gateway processes (4 leased slots each) against
    /// an ISMG capping each connection at 500 submits/s: submits/s, Result 8, enqueue-to-report.
    ManyLink(ManyLinkBenchArgs),
}

#[derive(Debug, Args)]
pub struct ManyLinkBenchArgs {
    #[arg(long, default_value_t = 60_000)]
    pub count: u64,
    /// Pace the enqueue at this many messages per second (0 = all at once, for throughput; the
    /// latency is then mostly queueing: pace below capacity, e.g. 3800, for the pipeline's).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HostileBenchArgs {
    /// Messages per fault (one more goes to the number the ISMG chokes on).
    #[arg(long, default_value_t = 1_000)]
    pub count: u64,
    /// How long to watch the flapping link (0 = skip it).
    #[arg(long, default_value_t = 120)]
    pub flap_seconds: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoopBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// MO messages to push through the MO stream afterwards.
    #[arg(long, default_value_t = 20_000)]
    pub mo: u64,
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// DELIVERs the simulator keeps unanswered (an ISMG's own window; real ones use 16).
    #[arg(long, default_value_t = 16)]
    pub deliver_window: usize,
    /// Pace the enqueue at this many messages per second (0 = all at once).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Reports for unknown Msg_Ids queued just before the messages (their latency shows the
    /// delay such a burst adds; the run then also waits for these to be written).
    #[arg(long, default_value_t = 0)]
    pub unmatched: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Connection counts to run, one run each.
    #[arg(long = "connections", default_values_t = [16usize, 64])]
    pub connections: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DrainBenchArgs {
    /// Messages in the stream before the gateway starts.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// The link's window.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Segments per message (long messages take a concatenation reference from Redis and put
    /// each segment on record as it is answered).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub parts: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LinkBenchArgs {
    /// Submits per run.
    #[arg(long, default_value_t = 200_000)]
    pub count: u64,
    /// Window sizes to run, one run each.
    #[arg(long = "window", default_values_t = [16usize, 64])]
    pub windows: Vec<usize>,
    /// The simulator's delay before each SUBMIT_RESP (e.g. 1ms to model a distant ISMG).
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub response_delay: Duration,
    /// Share of submits the simulator answers Result 8 at random (e.g. 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub flow_control_ratio: f64,
    /// The simulator's capacity: Result 8 beyond this many submits per second (0 = none).
    #[arg(long, default_value_t = 0)]
    pub capacity: u32,
    /// Print each run as one JSON line instead of a table row.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &BenchArgs) -> Result<(), String> {
    match &args.target {
        BenchTarget::Link(a) => {
            let limits = bench::link::Limits {
                response_delay: a.response_delay,
                flow_control_ratio: a.flow_control_ratio,
                capacity: a.capacity,
            };
            for &window in &a.windows {
                let r = bench::link::run(a.count, window, limits).await?;
                if a.json {
                    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
                } else {
                    println!(
                        "link W={:<3} {:>8} submits in {:6.2} s = {:>8.0}/s accepted  RTT p50 {:>6} us  p90 {:>6} us  p99 {:>6} us  max {:>7} us  Result 8 {}  errors {}  sim max unanswered {}",
                        r.window,
                        r.submits,
                        r.seconds,
                        r.submits_per_second,
                        r.rtt.p50_us,
                        r.rtt.p90_us,
                        r.rtt.p99_us,
                        r.rtt.max_us,
                        r.flow_control,
                        r.errors,
                        r.simulator_max_unanswered
                    );
                }
            }
            Ok(())
        }
        BenchTarget::Ingest(a) => {
            for r in bench::ingest::run(&a.connections, a.seconds).await? {
                if a.json {
                    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
                } else {
                    let stream = r.stream.map_or("-".to_owned(), |s| {
                        format!(
                            "peak {} end {} (unacknowledged {})",
                            s.peak, s.end, s.unacknowledged_end
                        )
                    });
                    println!(
                        "ingest {:<12} c={:<3} {:>8.0} requests/s  p50 {:>8}  p99 {:>8}  non-2xx {}  socket errors {}  cmpp:mt {stream}",
                        r.setup,
                        r.connections,
                        r.requests_per_second,
                        r.p50,
                        r.p99,
                        r.non_2xx,
                        r.socket_errors
                    );
                }
            }
            Ok(())
        }
        BenchTarget::Loop(a) => {
            let r = bench::full_loop::run(
                a.count,
                a.mo,
                a.window,
                a.deliver_window,
                a.rate,
                a.unmatched,
            )
            .await?;
            if a.json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!(
                    "loop W={:<3} rate {:>6} {:>8} messages in {:6.2} s = {:>8.0}/s to final report  enqueue->report p50 {} us  p99 {} us  max {} us{}  match waits {}  report script {} us of Redis/call  |  MO {:>6} in {:5.2} s = {:>7.0}/s",
                    a.window,
                    a.rate,
                    r.messages,
                    r.seconds,
                    r.messages_per_second,
                    r.enqueue_to_report.p50_us,
                    r.enqueue_to_report.p99_us,
                    r.enqueue_to_report.max_us,
                    if r.unmatched > 0 {
                        format!(" (behind {} unmatched reports)", r.unmatched)
                    } else {
                        String::new()
                    },
                    r.report_match_waits,
                    r.report_script_us
                        .map_or("-".to_owned(), |us| format!("{us:.1}")),
                    r.mo,
                    r.mo_seconds,
                    r.mo_per_second
                );
            }
            Ok(())
        }
        BenchTarget::Hostile(a) => {
            for r in bench::hostile::run(a.count).await? {
                if a.json {
                    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
                } else {
                    println!(
                        "hostile {:<48} {:>6} messages in {:6.2} s  copies max {} mean {:.3}  logins {}  dead letters {}",
                        r.fault,
                        r.messages,
                        r.seconds,
                        r.max_copies,
                        r.mean_copies,
                        r.logins,
                        r.dead_letters
                    );
                }
            }
            if a.flap_seconds > 0 {
                let r = bench::hostile::flap(a.flap_seconds).await?;
                if a.json {
                    println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
                } else {
                    let waits: Vec<String> = r.waits.iter().map(|w| format!("{w:.1}")).collect();
                    println!(
                        "flapping ISMG (drops each connection 1 s after login): {} logins in {:.0} s = {:.1}/min; waits (s): {}",
                        r.logins,
                        r.seconds,
                        r.logins_per_minute,
                        waits.join(" ")
                    );
                }
            }
            Ok(())
        }
        BenchTarget::ManyLink(a) => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find this program to run the gateways: {e}"))?;
            let r = bench::many_link::run(&exe, a.count, a.rate).await?;
            if a.json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                print_many_link(&r);
            }
            Ok(())
        }
        BenchTarget::Drain(a) => {
            let r = bench::drain::run(a.count, a.window, a.parts).await?;
            if a.json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!(
                    "drain W={:<3} {:>8} messages of {} part(s) in {:6.2} s = {:>8.0}/s (stream -> SUBMIT_RESP -> state -> XACK; simulator accepted {} segments)",
                    r.window,
                    r.messages,
                    r.parts,
                    r.seconds,
                    r.messages_per_second,
                    r.simulator_accepted
                );
            }
            Ok(())
        }
    }
}

fn print_many_link(r: &bench::many_link::ManyLinkRun) {
    let capacity = f64::from(r.connections * r.cap_per_connection);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let enqueue = if r.enqueue_rate > 0 {
        format!("paced at {}/s", r.enqueue_rate)
    } else {
        "all at once".to_owned()
    };
    println!(
        "many-link K={} over {} gateway processes, {}/s per connection (capacity {capacity:.0}/s): {} messages enqueued {enqueue}, last report after {:.2} s",
        r.connections, r.instances, r.cap_per_connection, r.messages, r.seconds
    );
    // A paced run sends what is enqueued: its rate says nothing about capacity.
    let throughput_target = if r.enqueue_rate > 0 {
        "(follows the enqueue pace; capacity: run without --rate)".to_owned()
    } else {
        format!(
            "target >= {:.0}/s (95 % of capacity): {}",
            0.95 * capacity,
            verdict(r.submits_per_second >= 0.95 * capacity)
        )
    };
    println!(
        "  submits accepted  {:>8.0}/s first to last (peak 1 s {}/s)   {throughput_target}",
        r.submits_per_second, r.peak_one_second
    );
    println!(
        "  Result 8          {} of {} submits = {:.3} %   target < 1 %: {}",
        r.flow_control,
        r.submits_received,
        100.0 * r.flow_control_share,
        verdict(r.flow_control_share < 0.01)
    );
    let l = &r.enqueue_to_report;
    println!(
        "  enqueue -> final report  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms ({} reports)   target p99 < 1 s: {}{}",
        l.p50_us as f64 / 1e3,
        l.p90_us as f64 / 1e3,
        l.p99_us as f64 / 1e3,
        l.max_us as f64 / 1e3,
        l.samples,
        verdict(l.p99_us < 1_000_000),
        if r.enqueue_rate == 0 {
            " (everything queued at once: this is mostly queueing; see --rate)"
        } else {
            ""
        }
    );
    let received = r.per_connection.iter().map(|c| c.submits_received);
    let refused = r.per_connection.iter().map(|c| c.flow_control);
    println!(
        "  carrier: connections peak {} (allowed {}), logins refused {}, closed {}; per connection submits {}..{}, Result 8 {}..{}",
        r.connections_peak,
        r.connections,
        r.logins_refused,
        r.connections_closed,
        received.clone().min().unwrap_or(0),
        received.max().unwrap_or(0),
        refused.clone().min().unwrap_or(0),
        refused.max().unwrap_or(0)
    );
    let cpu: Vec<String> = r
        .cpu
        .iter()
        .map(|p| format!("{} {:.0} %", p.process, p.percent_of_core))
        .collect();
    println!("  CPU (% of one core over the run): {}", cpu.join(", "));
    println!(
        "  cmpp:mt peak {} entries, {} at the end ({} unacknowledged)",
        r.outbound.peak, r.outbound.end, r.outbound.unacknowledged_end
    );
}
