//! gemm 0.19 under gemm 0.15's name, for dfdx 0.13: the same `gemm::gemm` entry point and
//! `Parallelism`, with the AVX-512 kernels that gemm 0.15 kept behind Rust nightly.
pub use gemm_current::*;
