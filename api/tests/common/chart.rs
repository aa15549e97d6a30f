//! A chart-like page on 127.0.0.1 for screenshot tests: a canvas drawn by a
//! script after a short delay, green with the right session cookie, red
//! without. It records the cookies each request carried.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;

#[derive(Clone, Default)]
pub struct ChartServer {
    pub cookies_seen: Arc<Mutex<Vec<String>>>,
    /// What `/storage/{id}` pages found in `localStorage` (the id of the
    /// page that wrote it before them, or `null`).
    pub storage_seen: Arc<Mutex<Vec<String>>>,
    pub port: u16,
}

/// A chart that remembers its id in `localStorage`, reports what an
/// earlier page left there, then draws its canvas.
async fn storage_chart(Path(id): Path<String>) -> Html<String> {
    Html(format!(
        r#"<!doctype html><html><body style="margin:0">
<script>
var before = localStorage.getItem('who');
localStorage.setItem('who', '{id}');
fetch('/storage-seen/' + before).then(function () {{
  var c = document.createElement('canvas'); c.width = 400; c.height = 200;
  var g = c.getContext('2d'); g.fillStyle = '#0969da'; g.fillRect(0, 0, 400, 200);
  document.body.appendChild(c);
}});
</script></body></html>"#
    ))
}

async fn storage_seen(
    State(seen): State<Arc<Mutex<Vec<String>>>>,
    Path(before): Path<String>,
) -> &'static str {
    if let Ok(mut s) = seen.lock() {
        s.push(before);
    }
    "ok"
}

async fn chart(
    State(seen): State<Arc<Mutex<Vec<String>>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Html<String> {
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let color = if cookie.contains("sessionid=secret") {
        "#1a7f37"
    } else {
        "#cf222e"
    };
    if let Ok(mut s) = seen.lock() {
        s.push(cookie);
    }
    Html(format!(
        r#"<!doctype html><html><body style="margin:0;background:#fff">
<h1 style="font:20px sans-serif">chart {id}</h1>
<script>
setTimeout(function () {{
  var c = document.createElement('canvas'); c.width = 800; c.height = 400;
  var g = c.getContext('2d'); g.fillStyle = '{color}'; g.fillRect(0, 0, 800, 400);
  g.strokeStyle = '#fff'; g.lineWidth = 4; g.beginPath(); g.moveTo(0, 380);
  for (var x = 0; x < 800; x += 20) {{ g.lineTo(x, 200 + 150 * Math.sin(x / 60)); }}
  g.stroke(); document.body.appendChild(c);
}}, 200);
</script></body></html>"#
    ))
}

/// `/c/{id}`: a chart whose id says what it is: `missing-…` answers 404
/// (TradingView's page for a chart that does not exist), `never-…` never
/// draws its canvas, anything else is a chart.
async fn by_id(
    state: State<Arc<Mutex<Vec<String>>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if id.starts_with("missing-") {
        return (
            axum::http::StatusCode::NOT_FOUND,
            Html("<!doctype html><html><body>This chart does not exist</body></html>"),
        )
            .into_response();
    }
    if id.starts_with("never-") {
        return empty().await.into_response();
    }
    chart(state, Path(id), headers).await.into_response()
}

/// A page that never draws its canvas (for timeouts).
async fn empty() -> Html<&'static str> {
    Html("<!doctype html><html><body>loading…</body></html>")
}

impl ChartServer {
    pub async fn start() -> Self {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let storage: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = Router::new()
            .route("/chart/{id}", get(chart))
            .route("/never/{id}", get(empty))
            .route("/c/{id}", get(by_id))
            .with_state(seen.clone())
            .route("/storage/{id}", get(storage_chart))
            .route(
                "/storage-seen/{before}",
                get(storage_seen).with_state(storage.clone()),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            cookies_seen: seen,
            storage_seen: storage,
            port,
        }
    }

    pub fn chart_url(&self) -> String {
        format!("http://127.0.0.1:{}/chart/{{chart}}", self.port)
    }
}

/// A PNG's size and how many distinct colours it has (a blank capture has
/// one).
pub fn png_facts(bytes: &[u8]) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let step = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    for px in buf[..info.buffer_size()].chunks(step).step_by(97) {
        colours.insert(px.to_vec());
    }
    (info.width, info.height, colours.len())
}
