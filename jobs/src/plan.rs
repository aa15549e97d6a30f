//! Plans: what each one may do, and how urgent its screenshots are.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A user's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Free.
    Free,
    /// Basic.
    Basic,
    /// Pro.
    Pro,
    /// Premium.
    Premium,
}

impl Plan {
    /// Every plan, cheapest first.
    pub const ALL: [Plan; 4] = [Plan::Free, Plan::Basic, Plan::Pro, Plan::Premium];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Basic => "basic",
            Plan::Pro => "pro",
            Plan::Premium => "premium",
        }
    }

    /// Signals allowed per calendar month (UTC) unless set per user.
    pub fn default_quota(self) -> i32 {
        match self {
            Plan::Free => 100,
            Plan::Basic => 1_000,
            Plan::Pro => 10_000,
            Plan::Premium => 100_000,
        }
    }

    /// Webhook requests allowed per minute per user.
    pub fn requests_per_minute(self) -> u32 {
        match self {
            Plan::Free => 30,
            Plan::Basic => 120,
            Plan::Pro => 600,
            Plan::Premium => 3_000,
        }
    }

    /// Queue priority of this plan's screenshots: paid plans first.
    pub fn screenshot_priority(self) -> u8 {
        match self {
            Plan::Premium => 0,
            Plan::Pro => 1,
            Plan::Basic => 2,
            Plan::Free => 3,
        }
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Plan {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown plan {s:?}: use free, basic, pro or premium"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_paid_plans_come_first() {
        assert_eq!("PRO".parse::<Plan>().ok(), Some(Plan::Pro));
        assert!("gold".parse::<Plan>().is_err());
        let mut by_priority = Plan::ALL;
        by_priority.sort_by_key(|p| p.screenshot_priority());
        assert_eq!(
            by_priority,
            [Plan::Premium, Plan::Pro, Plan::Basic, Plan::Free]
        );
    }
}
