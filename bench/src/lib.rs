//! Tools to test and measure percore with: an origin server whose answers are chosen
//! per request, and a load generator, so tests and benchmarks need nothing outside
//! this repository.

pub mod chart;
pub mod compare;
pub mod load;
pub mod origin;
