//! Waiting for a node's state to reach a condition. The servers expose their state
//! (metrics, the published topology, link tables), not change events, so a wait
//! re-checks at a short interval until the condition holds or its deadline passes;
//! this is the one place that interval lives. Tests never sleep for a guessed time.

use std::future::Future;
use std::time::Duration;

/// How often a condition is checked again.
const RECHECK: Duration = Duration::from_millis(20);

/// Checks `condition` until it gives `Ok`, or gives its last `Err` (the state seen,
/// for the message) once `timeout` has passed.
pub async fn until<T, F>(timeout: Duration, mut condition: impl FnMut() -> F) -> Result<T, String>
where
    F: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match condition().await {
            Ok(t) => return Ok(t),
            Err(state) if tokio::time::Instant::now() >= deadline => return Err(state),
            Err(_) => tokio::time::sleep(RECHECK).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_the_value_once_the_condition_holds_or_the_last_state_at_the_deadline() {
        let mut n = 0;
        let got = until(Duration::from_secs(1), || {
            n += 1;
            let v = n;
            async move { if v >= 3 { Ok(v) } else { Err(format!("at {v}")) } }
        })
        .await;
        assert_eq!(got, Ok(3));
        let start = tokio::time::Instant::now();
        let never = until(Duration::from_millis(60), || async { Err::<(), _>("still not".to_string()) }).await;
        assert_eq!(never, Err("still not".into()));
        assert!(start.elapsed() >= Duration::from_millis(60));
    }
}
