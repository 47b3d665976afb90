//! Integration tests against real servers on loopback, in one test binary. The helpers in `support/` start
//! the servers (an SMTP sink, the AWS API emulator, OpenSSH, HTTP targets) on free ports and stop them when
//! the test ends, on panic too. `scripts/test` installs what they need; a server that cannot start fails the
//! test rather than skipping it.

mod alert;
mod cli;
mod cloud;
mod cluster;
mod cluster_core;
mod demo;
mod deploy;
mod deploy_cluster;
mod deploy_drain;
mod deploy_e2e;
mod logger;
mod monitor_checks;
mod monitor_cluster;
mod monitor_e2e;
mod monitor_fresh;
mod monitor_page;
mod monitor_quiet;
mod scale;
mod support;
