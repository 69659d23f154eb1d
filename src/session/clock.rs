//! When a session's token runs out, and when the session warns about it (`token_expiring`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the session's token runs out, and when to warn about it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokenClock {
    /// The session closes with 4002 then.
    pub(crate) expiry: Option<tokio::time::Instant>,
    /// `token_expiring` is sent then (once per token).
    pub(crate) warning: Option<tokio::time::Instant>,
    /// The end in milliseconds since the epoch, as told to the client.
    pub(crate) expires_at_ms: Option<u64>,
}

impl TokenClock {
    /// For a token valid until `expires_at` (seconds since the epoch, leeway included). Token
    /// times are bounded when verified; the arithmetic here is checked all the same, so an
    /// absurd time means "far away", never a panic.
    pub(super) fn new(expires_at: Option<u64>, warn_before: Duration) -> Self {
        let Some(expires_at) = expires_at else {
            return TokenClock::default();
        };
        let left = match UNIX_EPOCH.checked_add(Duration::from_secs(expires_at)) {
            Some(end) => end
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .min(FAR),
            None => FAR,
        };
        let now = tokio::time::Instant::now();
        TokenClock {
            expiry: Some(now + left),
            // Not before half the remaining life: a token shorter than the warning would
            // otherwise be warned about (and refreshed) again at once, in a loop.
            warning: (!warn_before.is_zero())
                .then(|| now + left.saturating_sub(warn_before).max(left / 2)),
            expires_at_ms: Some(expires_at.saturating_mul(1000)),
        }
    }
}

/// Timers further away than this are this far away: about 30 years, past any session's life.
const FAR: Duration = Duration::from_secs(1 << 30);

#[cfg(test)]
mod tests {
    use super::*;

    fn now_s() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_warning_comes_before_exp_but_not_before_half_the_remaining_life() {
        let start = tokio::time::Instant::now();
        let long = TokenClock::new(Some(now_s() + 600), Duration::from_secs(60));
        let warn_in = long.warning.unwrap() - start;
        assert!((535..=541).contains(&warn_in.as_secs()), "{warn_in:?}");
        let short = TokenClock::new(Some(now_s() + 20), Duration::from_secs(60));
        let warn_in = short.warning.unwrap() - start;
        assert!((9..=11).contains(&warn_in.as_secs()), "{warn_in:?}");
        let off = TokenClock::new(Some(now_s() + 20), Duration::ZERO);
        assert!(off.warning.is_none() && off.expiry.is_some());
        assert!(TokenClock::new(None, Duration::from_secs(60))
            .expiry
            .is_none());
    }

    #[test]
    fn absurd_times_are_far_away_not_a_panic() {
        for at in [1 << 62, 1 << 63, 10_000_000_000_000_000_000, u64::MAX] {
            let clock = TokenClock::new(Some(at), Duration::from_secs(60));
            assert!(clock.expiry.unwrap() > tokio::time::Instant::now() + FAR / 2);
            assert_eq!(clock.expires_at_ms, Some(at.saturating_mul(1000)));
        }
    }
}
