//! Benchmarks run as `cmpp-gateway bench …`, against the built-in simulator on loopback.
//! They measure; they never assert: the numbers go to README with the command that made them.

pub mod cpu;
pub mod drain;
pub mod full_loop;
pub mod gateway_process;
pub mod hostile;
pub mod ingest;
pub mod link;
pub mod many_link;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod rig;
pub mod stream_watch;

use std::time::Duration;

/// Latency percentiles of a run, from samples in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn from_micros(mut samples: Vec<u64>) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| -> u64 {
            if samples.is_empty() {
                return 0;
            }
            let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        };
        Latency {
            samples: samples.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: samples.last().copied().unwrap_or(0),
        }
    }
}

/// Operations per second over `elapsed`.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let l = Latency::from_micros((1..=100).rev().collect());
        assert_eq!((l.p50_us, l.p90_us, l.p99_us, l.max_us), (50, 90, 99, 100));
        assert_eq!(Latency::from_micros(vec![]).p99_us, 0);
        assert_eq!(Latency::from_micros(vec![7]).p50_us, 7);
    }
}
