//! Tools to test and measure percore with: an origin server whose answers are chosen
//! per request, so tests and benchmarks need nothing outside this repository.

pub mod origin;
