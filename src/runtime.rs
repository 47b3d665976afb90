//! The daemon's skeleton: parts run as supervised tasks that share one [`CancellationToken`]; signals cancel it.
//!
//! A part that fails (an error or a panic) is logged and restarted with capped exponential backoff; the daemon
//! stays up. The first SIGINT/SIGTERM asks every part to stop (in-flight work finishes or is persisted); a second
//! one exits at once.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Runs `make()` until `shutdown`, restarting it after failures with backoff (1 s doubling to 60 s; reset after
/// a minute of healthy running). A part that returns `Ok` before shutdown is done and not restarted.
pub async fn supervise<F, Fut, E>(name: &'static str, shutdown: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    let mut delay = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let outcome = tokio::spawn(make()).await;
        if shutdown.is_cancelled() {
            return;
        }
        let reason = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => crate::core::chain(&e),
            Err(join) if join.is_panic() => "it panicked".to_string(),
            Err(join) => format!("{join}"),
        };
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_secs(1);
        }
        tracing::error!(part = name, error = %reason, restart_in = %crate::core::duration::seconds(delay),
            "Part {name} failed; restarting it");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM; exits the process with status 130 on the second.
pub fn cancel_on_signals(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                tracing::warn!("Cannot install signal handlers; stop tend with SIGKILL");
                return;
            };
            let next = async |int: &mut tokio::signal::unix::Signal,
                              term: &mut tokio::signal::unix::Signal| {
                tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            };
            next(&mut int, &mut term).await;
            crate::notice!("Shutting down (signal again to force)");
            shutdown.cancel();
            next(&mut int, &mut term).await;
            eprintln!("Second signal: exiting now");
            std::process::exit(130);
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn restarts_a_failing_part_with_backoff_until_shutdown() {
        let runs = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let r = runs.clone();
        let task = tokio::spawn(supervise("flaky", shutdown.clone(), move || {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 1 {
                    panic!("second run panics");
                }
                Err::<(), std::io::Error>(std::io::Error::other("boom"))
            }
        }));
        // Runs at 0 s, 1 s, 3 s, 7 s: four runs by 8 s.
        tokio::time::sleep(Duration::from_millis(8_000)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_part_that_finishes_is_not_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        supervise("once", CancellationToken::new(), move || {
            r.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), std::io::Error>(()) }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
