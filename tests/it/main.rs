//! Integration tests against real servers on loopback, in one test binary (minimal entry of the `cloud`
//! branch; the lead's main.rs lists every module).

mod cloud;
mod scale;
mod support;
