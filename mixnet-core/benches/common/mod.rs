//! What every benchmark of the core shares.

/// Short runs: these shared 2-core machines are noisy, so figures are ratios against
/// a reference measured in the same run, not absolute times.
pub(crate) fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}
