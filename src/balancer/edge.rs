//! The [`Balancer`] contract both kinds (`elb.rs`, `command.rs`) and the fake implement: register, deregister and
//! drain one instance. A leaf of `balancer/`: it imports neither kind.

use crate::cloud::{CloudFuture, Instance};

/// Puts instances behind a load balancer and takes them out.
pub trait Balancer: Send + Sync {
    /// Adds `instance` (registering one already registered is not an error).
    fn register<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()>;
    /// Removes `instance` (removing one not registered is not an error).
    fn deregister<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()>;
    /// Removes `instance` and returns once the balancer sends it no more traffic (a deploy calls this before
    /// changing a host). The default is [`Balancer::deregister`]: a `command` balancer is drained when its
    /// command ends; `elb` waits out the target group's deregistration delay.
    fn drain<'a>(&'a self, instance: &'a Instance) -> CloudFuture<'a, ()> {
        self.deregister(instance)
    }
}
