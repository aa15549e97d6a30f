//! A pool of headless Chromium tabs for screenshots.
//!
//! One Chromium process (the system's, never a downloaded one) is launched
//! on first use, with none of this process's secrets in its environment.
//! Each capture opens its tab in a browser context of its own, disposed of
//! afterwards: what one user's chart page leaves behind (cookies, local
//! storage, cache) is never there for another user's capture. When the
//! browser dies (crash, kill), the next capture launches a new one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::network::{CookieParam, SetCookiesParams};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::users::SessionCookie;

/// The flags every launch gets (besides chromiumoxide's own headless
/// defaults): no background traffic, no first-run work.
pub const FLAGS: [&str; 7] = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
];

/// The variables of this process Chromium keeps: what it needs to run,
/// find fonts and speak the locale. Every other one is blanked at launch
/// (chromiumoxide can add variables but not clear them), so that the
/// secrets in this process's environment (cookie key, database URL,
/// Redis URL, session secret, S3 keys) never reach a browser that opens
/// pages from the internet.
const KEPT_VARIABLES: [&str; 8] = [
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "FONTCONFIG_PATH",
    "FONTCONFIG_FILE",
];

/// Whether this process runs as root (effective uid 0, from
/// `/proc/self/status`; false where there is no such file).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid(&status))
        == Some(0)
}

/// The effective uid in a `/proc/<pid>/status` text: the second number of
/// its `Uid:` line (real, effective, saved, filesystem).
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
}

/// Whether a failed launch is Chromium refusing its sandbox (its stderr is
/// in the error): "No usable sandbox!" where user namespaces are off,
/// "Running as root without --no-sandbox is not supported" as root.
fn refuses_sandbox(error: &str) -> bool {
    error.contains("No usable sandbox") || error.contains("without --no-sandbox")
}

/// Every variable of this process but [`KEPT_VARIABLES`] (and `LC_*`),
/// set to the empty string.
fn blanked_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| !KEPT_VARIABLES.contains(&name.as_str()) && !name.starts_with("LC_"))
        .map(|name| (name, String::new()))
        .collect()
}

/// How the pool launches and uses Chromium.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSettings {
    /// The Chromium binary.
    pub executable: PathBuf,
    /// Tabs used at once.
    pub tabs: usize,
    /// Viewport width and height, CSS pixels.
    pub viewport: (u32, u32),
    /// An element to wait for before capturing (the chart's canvas).
    pub ready_selector: Option<String>,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            executable: PathBuf::from("/usr/bin/chromium"),
            tabs: 3,
            viewport: (1280, 720),
            ready_selector: Some("canvas".into()),
        }
    }
}

struct Tab {
    page: Page,
    context: BrowserContextId,
    generation: u64,
}

struct Live {
    browser: Browser,
    driver: JoinHandle<()>,
    generation: u64,
    data_dir: PathBuf,
}

impl Live {
    fn is_alive(&mut self) -> bool {
        !self.driver.is_finished() && matches!(self.browser.try_wait(), Ok(None))
    }
}

/// Shared tabs of one Chromium process.
pub struct BrowserPool {
    settings: BrowserSettings,
    live: Mutex<Option<Live>>,
    slots: Semaphore,
    generations: AtomicU64,
    /// Whether Chromium runs sandboxed here: decided by the first launch,
    /// so a later launch that fails for another reason (a timeout under
    /// load, a full disk) is an error, never a quiet loss of the sandbox.
    sandboxed: std::sync::OnceLock<bool>,
}

impl std::fmt::Debug for BrowserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPool")
            .field("settings", &self.settings)
            .finish()
    }
}

impl BrowserPool {
    /// A pool that launches Chromium on first use.
    pub fn new(settings: BrowserSettings) -> Arc<Self> {
        let tabs = settings.tabs.max(1);
        Arc::new(Self {
            settings,
            live: Mutex::new(None),
            slots: Semaphore::new(tabs),
            generations: AtomicU64::new(0),
            sandboxed: std::sync::OnceLock::new(),
        })
    }

    /// How many captures it runs at once.
    pub fn tabs(&self) -> usize {
        self.settings.tabs.max(1)
    }

    /// The browser process's id, while one runs (tests kill it).
    pub async fn browser_pid(&self) -> Option<u32> {
        let mut live = self.live.lock().await;
        live.as_mut()
            .and_then(|l| l.browser.get_mut_child())
            .and_then(|c| c.as_mut_inner().id())
    }

    /// Open `url` with `cookies` set, wait until it is ready, and capture
    /// the viewport as a PNG, all within `timeout`.
    pub async fn capture(
        &self,
        url: &str,
        cookies: &[SessionCookie],
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| Error::Browser("the browser pool is closed".into()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let too_slow = || Error::Browser(format!("no screenshot of {url} within {timeout:?}"));
        let tab = tokio::time::timeout_at(deadline, self.take_tab())
            .await
            .map_err(|_| too_slow())??;
        // The tab is held outside the timed part, so a capture that runs out
        // of time still closes its tab (and browser context) instead of
        // leaking it in the browser.
        let navigated = std::sync::atomic::AtomicBool::new(false);
        let captured =
            tokio::time::timeout_at(deadline, self.capture_on(&tab, url, cookies, &navigated))
                .await;
        // Never reused: the next capture gets a fresh context.
        self.discard(tab).await;
        match captured {
            Ok(Ok(png)) => Ok(png),
            Ok(Err(e)) => Err(e),
            // The page was there: it never got ready (a chart that does not
            // draw), which is no failure of the chart host.
            Err(_) if navigated.load(Ordering::Relaxed) => Err(Error::PageNotReady(format!(
                "{url} was not ready within {timeout:?}"
            ))),
            Err(_) => Err(too_slow()),
        }
    }

    async fn capture_on(
        &self,
        tab: &Tab,
        url: &str,
        cookies: &[SessionCookie],
        navigated: &std::sync::atomic::AtomicBool,
    ) -> Result<Vec<u8>> {
        let cdp = |e: chromiumoxide::error::CdpError| Error::Browser(e.to_string());
        if !cookies.is_empty() {
            let params: Vec<CookieParam> = cookies
                .iter()
                .map(|c| CookieParam {
                    url: c.domain.is_none().then(|| url.to_owned()),
                    domain: c.domain.clone(),
                    path: Some(c.path.clone().unwrap_or_else(|| "/".into())),
                    ..CookieParam::new(c.name.clone(), c.value.clone())
                })
                .collect();
            tab.page
                .execute(SetCookiesParams::new(params))
                .await
                .map_err(cdp)?;
        }
        tab.page.goto(url).await.map_err(cdp)?;
        // A client error (404: no such chart, 403: not the user's to see) is
        // the page's answer, final; a server error says the host is unwell.
        let status = tab
            .page
            .wait_for_navigation_response()
            .await
            .map_err(cdp)?
            .and_then(|request| request.response.as_ref().map(|r| r.status));
        if let Some(status) = status.filter(|s| (400..500).contains(s) && ![408, 429].contains(s)) {
            return Err(Error::ChartMissing(format!("{url} answered {status}")));
        }
        if let Some(status) = status.filter(|s| *s >= 500) {
            return Err(Error::Browser(format!("{url} answered {status}")));
        }
        navigated.store(true, Ordering::Relaxed);
        if let Some(selector) = &self.settings.ready_selector {
            while tab.page.find_element(selector.as_str()).await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tab.page
            .screenshot(
                ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build(),
            )
            .await
            .map_err(cdp)
    }

    async fn take_tab(&self) -> Result<Tab> {
        let mut live = self.live.lock().await;
        if live.as_mut().is_none_or(|l| !l.is_alive()) {
            if let Some(old) = live.take() {
                tracing::warn!("the browser stopped; launching a new one");
                shut(old).await;
            }
            *live = Some(self.launch().await?);
        }
        let Some(current) = live.as_ref() else {
            return Err(Error::Browser("the browser did not start".into()));
        };
        let generation = current.generation;
        let cdp = |e: chromiumoxide::error::CdpError| Error::Browser(e.to_string());
        let context = current
            .browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .map_err(cdp)?;
        let page = current
            .browser
            .new_page(
                CreateTargetParams::builder()
                    .url("about:blank")
                    .browser_context_id(context.clone())
                    .build()
                    .map_err(Error::Browser)?,
            )
            .await
            .map_err(cdp)?;
        Ok(Tab {
            page,
            context,
            generation,
        })
    }

    async fn discard(&self, tab: Tab) {
        let live = self.live.lock().await;
        if let Some(l) = live.as_ref().filter(|l| l.generation == tab.generation) {
            let _ = l.browser.dispose_browser_context(tab.context).await;
        }
    }

    /// Launch Chromium, with its sandbox where the platform allows it. A
    /// process running as root cannot have one (Chromium refuses to start
    /// sandboxed as root). Elsewhere the first launch tries the sandbox;
    /// only when Chromium itself says it has no usable sandbox (user
    /// namespaces off) does it start without, and the log says so. The
    /// answer holds for the pool's life.
    async fn launch(&self) -> Result<Live> {
        if let Some(&sandboxed) = self.sandboxed.get() {
            return self.launch_with(sandboxed).await;
        }
        if running_as_root() {
            let _ = self.sandboxed.set(false);
            return self.launch_with(false).await;
        }
        match self.launch_with(true).await {
            Ok(live) => {
                let _ = self.sandboxed.set(true);
                Ok(live)
            }
            Err(e) if refuses_sandbox(&e.to_string()) => {
                tracing::warn!(
                    error = %e,
                    "chromium has no usable sandbox here; starting it without its sandbox"
                );
                let _ = self.sandboxed.set(false);
                self.launch_with(false).await
            }
            Err(e) => Err(e),
        }
    }

    async fn launch_with(&self, sandboxed: bool) -> Result<Live> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        // A data directory per launch: two pools (or two processes) never
        // fight over Chromium's profile lock.
        let data_dir = std::env::temp_dir().join(format!(
            "sluice-chromium-{}-{}-{generation}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        let (w, h) = self.settings.viewport;
        let mut builder = BrowserConfig::builder().chrome_executable(&self.settings.executable);
        if !sandboxed {
            builder = builder.no_sandbox();
        }
        let config = builder
            .user_data_dir(&data_dir)
            .window_size(w, h)
            .viewport(Viewport {
                width: w,
                height: h,
                ..Viewport::default()
            })
            .args(FLAGS)
            .envs(blanked_environment())
            .build()
            .map_err(Error::Browser)?;
        let (browser, mut handler) = match Browser::launch(config).await {
            Ok(launched) => launched,
            Err(e) => {
                // Nothing else will remove it.
                let _ = std::fs::remove_dir_all(&data_dir);
                return Err(Error::Browser(format!(
                    "cannot launch {}: {e}",
                    self.settings.executable.display()
                )));
            }
        };
        let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
        tracing::info!(executable = %self.settings.executable.display(), sandboxed, "browser launched");
        Ok(Live {
            browser,
            driver,
            generation,
            data_dir,
        })
    }

    /// Close the browser (the pool launches a new one when used again).
    pub async fn close(&self) {
        if let Some(live) = self.live.lock().await.take() {
            shut(live).await;
        }
    }
}

async fn shut(mut live: Live) {
    let _ = tokio::time::timeout(Duration::from_secs(2), live.browser.close()).await;
    let _ = live.browser.kill().await;
    let _ = live.browser.wait().await;
    live.driver.abort();
    let _ = std::fs::remove_dir_all(&live.data_dir);
}

#[cfg(test)]
mod tests {
    use super::effective_uid;

    #[test]
    fn only_chromiums_own_refusal_of_its_sandbox_starts_it_without() {
        assert!(super::refuses_sandbox(
            "cannot launch /usr/bin/chromium: Browser process exited with status ExitStatus(1) before websocket URL could be resolved, stderr: \"[1:1:FATAL:zygote_host_impl_linux.cc(128)] No usable sandbox! ...\""
        ));
        assert!(super::refuses_sandbox(
            "stderr: \"Running as root without --no-sandbox is not supported. See https://crbug.com/638180.\""
        ));
        assert!(!super::refuses_sandbox(
            "cannot launch /usr/bin/chromium: Timeout while resolving websocket URL from browser process, stderr: \"\""
        ));
    }

    #[test]
    fn the_effective_uid_is_the_second_of_the_uid_line() {
        let status =
            "Name:\tsluice\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(
            effective_uid("Uid:\t65534\t65534\t65534\t65534\n"),
            Some(65534)
        );
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }
}
