//! The SP side of one CMPP link. So far: the framing codec shared with the simulator.

pub mod codec;
