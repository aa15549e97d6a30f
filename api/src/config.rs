//! The config file (TOML) and how it combines with flags and environment.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "sluice";

/// What a config file may hold. Unknown keys are refused, so a typo does not
/// silently fall back to a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Redis URL.
    pub redis_url: Option<String>,
    /// Key prefix.
    pub prefix: Option<String>,
}

impl FileConfig {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Settings after combining flags, environment, file and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Redis URL.
    pub redis_url: String,
    /// Key prefix.
    pub prefix: String,
}

impl Settings {
    /// Flag or environment (`cli`) first, then the file, then defaults.
    pub fn resolve(
        cli_redis_url: Option<String>,
        cli_prefix: Option<String>,
        file: FileConfig,
    ) -> Self {
        Self {
            redis_url: cli_redis_url
                .or(file.redis_url)
                .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
            prefix: cli_prefix
                .or(file.prefix)
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file: FileConfig =
            toml::from_str("redis_url = \"redis://file/\"\nprefix = \"p\"").expect("toml");
        let s = Settings::resolve(Some("redis://flag/".into()), None, file.clone());
        assert_eq!(
            (s.redis_url.as_str(), s.prefix.as_str()),
            ("redis://flag/", "p")
        );
        let d = Settings::resolve(None, None, FileConfig::default());
        assert_eq!(
            (d.redis_url.as_str(), d.prefix.as_str()),
            (DEFAULT_REDIS_URL, DEFAULT_PREFIX)
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("redis_ulr = \"x\"").is_err());
    }
}
