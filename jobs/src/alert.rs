//! The alert parser: what TradingView sends to a webhook, as a structured
//! signal.
//!
//! Two shapes are accepted:
//! - a JSON object, with keys such as `ticker`, `exchange`, `price`,
//!   `signal`, `indicator`, `time` (English or Spanish, any case);
//! - plain text of `Label: value` lines, where a label may start with emoji
//!   or other decoration (`🪙 Ticker: BINANCE:BTCUSDT`, `💰 Precio: $67,890.50`).
//!
//! A ticker `EXCHANGE:SYMBOL` is split in two. Prices accept currency signs
//! and thousands separators in either convention (`67,890.50`, `67.890,50`).
//! Unknown labels are ignored; a body without a ticker or a signal is an
//! error that says what is missing.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The largest alert body accepted, bytes.
pub const MAX_ALERT_BYTES: usize = 64 * 1024;

/// A parsed alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The ticker as sent, upper-cased (`BINANCE:BTCUSDT`).
    pub ticker: String,
    /// The exchange, from the ticker prefix or its own field.
    pub exchange: Option<String>,
    /// The symbol (`BTCUSDT`).
    pub symbol: String,
    /// The price, when given.
    pub price: Option<Decimal>,
    /// What the alert says happened (`Bullish divergence`, `buy`).
    pub signal_type: String,
    /// The indicator or strategy that fired.
    pub indicator: Option<String>,
    /// When the alert fired, when given.
    pub alert_time: Option<DateTime<Utc>>,
    /// Free text (`message`, `notes`).
    pub notes: Option<String>,
}

/// Why a body is not an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the alert is empty")]
    Empty,
    /// Longer than [`MAX_ALERT_BYTES`].
    #[error("the alert is {0} bytes; at most {MAX_ALERT_BYTES} are accepted")]
    TooLarge(usize),
    /// Starts like JSON but is not a JSON object.
    #[error("the alert looks like JSON but is not a JSON object: {0}")]
    Json(String),
    /// A required field is missing.
    #[error("the alert has no {0} (expected a `{1}` field or line)")]
    Missing(&'static str, &'static str),
    /// A field has a value that cannot be used.
    #[error("the alert's {field} {value:?} {problem}")]
    BadValue {
        /// Which field.
        field: &'static str,
        /// The value as sent (cut to 80 characters).
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Which field a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Ticker,
    Exchange,
    Price,
    Signal,
    Indicator,
    Time,
    Notes,
}

/// Labels in English and Spanish, lower-case, without accents.
fn field_of(label: &str) -> Option<Field> {
    let l = fold(label);
    let f = match l.as_str() {
        "ticker" | "symbol" | "simbolo" | "pair" | "par" | "activo" | "asset" | "instrument"
        | "instrumento" => Field::Ticker,
        "exchange" | "bolsa" | "mercado" | "market" => Field::Exchange,
        "price" | "precio" | "close" | "cierre" | "entry" | "entrada" | "last" => Field::Price,
        "signal" | "senal" | "signal type" | "tipo de senal" | "action" | "accion" | "side"
        | "type" | "tipo" | "alert" | "alerta" | "order" | "orden" => Field::Signal,
        "indicator" | "indicador" | "strategy" | "estrategia" | "study" => Field::Indicator,
        "time" | "timestamp" | "hora" | "fecha" | "date" | "timenow" | "alert time" => Field::Time,
        "notes" | "note" | "notas" | "nota" | "message" | "mensaje" | "comment" | "comentario" => {
            Field::Notes
        }
        _ => return None,
    };
    Some(f)
}

/// Lower-case, Spanish accents removed, decoration around it trimmed.
fn fold(label: &str) -> String {
    let trimmed = label.trim_matches(|c: char| !c.is_alphanumeric());
    trimmed
        .chars()
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            '_' | '-' => ' ',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[derive(Default)]
struct Fields {
    ticker: Option<String>,
    exchange: Option<String>,
    price: Option<String>,
    signal: Option<String>,
    indicator: Option<String>,
    time: Option<String>,
    notes: Option<String>,
}

impl Fields {
    fn set(&mut self, field: Field, value: String) {
        let value = value.trim().to_owned();
        if value.is_empty() {
            return;
        }
        let slot = match field {
            Field::Ticker => &mut self.ticker,
            Field::Exchange => &mut self.exchange,
            Field::Price => &mut self.price,
            Field::Signal => &mut self.signal,
            Field::Indicator => &mut self.indicator,
            Field::Time => &mut self.time,
            Field::Notes => &mut self.notes,
        };
        // The first occurrence wins (`close` after `price` does not override).
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

/// Parse an alert body.
pub fn parse(body: &str) -> Result<Alert, ParseError> {
    if body.len() > MAX_ALERT_BYTES {
        return Err(ParseError::TooLarge(body.len()));
    }
    let body = body.trim_start_matches('\u{feff}').trim();
    if body.is_empty() {
        return Err(ParseError::Empty);
    }
    let fields = if body.starts_with('{') || body.starts_with('[') {
        from_json(body)?
    } else {
        from_lines(body)
    };
    build(fields)
}

fn from_json(body: &str) -> Result<Fields, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ParseError::Json("the top level is not an object".into()));
    };
    let mut fields = Fields::default();
    for (key, value) in map {
        let Some(field) = field_of(&key) else {
            continue;
        };
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        fields.set(field, text);
    }
    Ok(fields)
}

fn from_lines(body: &str) -> Fields {
    let mut fields = Fields::default();
    for line in body.lines() {
        // `Label: value`, also with a full-width colon or `=`.
        let split = line
            .split_once(':')
            .or_else(|| line.split_once('：'))
            .or_else(|| line.split_once('='));
        let Some((label, value)) = split else {
            continue;
        };
        if let Some(field) = field_of(label) {
            fields.set(field, value.to_owned());
        }
    }
    fields
}

fn build(f: Fields) -> Result<Alert, ParseError> {
    let ticker_raw = f.ticker.ok_or(ParseError::Missing("ticker", "Ticker"))?;
    let signal_type = f.signal.ok_or(ParseError::Missing("signal", "Signal"))?;
    let ticker = ticker_raw.trim().to_uppercase();
    let (exchange_from_ticker, symbol) = match ticker.split_once(':') {
        Some((ex, sym)) => (Some(ex.to_owned()), sym.to_owned()),
        None => (None, ticker.clone()),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._!/-&^".contains(c))
    };
    if !valid(&symbol) || exchange_from_ticker.as_deref().is_some_and(|e| !valid(e)) {
        return Err(bad(
            "ticker",
            &ticker_raw,
            "is not a ticker (like BINANCE:BTCUSDT)",
        ));
    }
    let exchange = match (exchange_from_ticker, f.exchange) {
        (Some(e), _) => Some(e),
        (None, Some(e)) => {
            let e = e.trim().to_uppercase();
            if !valid(&e) {
                return Err(bad("exchange", &e, "is not an exchange name"));
            }
            Some(e)
        }
        (None, None) => None,
    };
    let price = match f.price {
        Some(p) => Some(parse_price(&p).ok_or_else(|| bad("price", &p, "is not a number"))?),
        None => None,
    };
    let alert_time = match f.time {
        Some(t) => Some(parse_time(&t).ok_or_else(|| bad("time", &t, "is not a time"))?),
        None => None,
    };
    Ok(Alert {
        ticker,
        exchange,
        symbol,
        price,
        signal_type: cut(&signal_type, 200),
        indicator: f.indicator.map(|i| cut(&i, 200)),
        alert_time,
        notes: f.notes.map(|n| cut(&n, 2000)),
    })
}

fn bad(field: &'static str, value: &str, problem: &'static str) -> ParseError {
    ParseError::BadValue {
        field,
        value: cut(value, 80),
        problem,
    }
}

fn cut(s: &str, max_chars: usize) -> String {
    s.trim().chars().take(max_chars).collect()
}

/// A price with currency signs, spaces and thousands separators in either
/// convention. `None` when it is not a non-negative number.
pub fn parse_price(raw: &str) -> Option<Decimal> {
    if raw.contains('-') {
        return None;
    }
    let s: String = raw
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\'' && *c != '_')
        .skip_while(|c| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .collect();
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return None;
    }
    let commas = s.matches(',').count();
    let dots = s.matches('.').count();
    let normal = match (commas, dots) {
        (0, 0) | (0, 1) => s,
        (0, _) => s.replace('.', ""),
        (_, 0) => {
            let after = s.rsplit(',').next().unwrap_or_default();
            if commas == 1 && after.len() != 3 {
                s.replace(',', ".")
            } else {
                s.replace(',', "")
            }
        }
        _ => {
            // Both: the one that comes last is the decimal point.
            let last_comma = s.rfind(',').unwrap_or(0);
            let last_dot = s.rfind('.').unwrap_or(0);
            if last_dot > last_comma {
                if dots > 1 {
                    return None;
                }
                s.replace(',', "")
            } else {
                if commas > 1 {
                    return None;
                }
                s.replace('.', "").replace(',', ".")
            }
        }
    };
    normal.parse::<Decimal>().ok()
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or Unix seconds or milliseconds.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(Utc.from_utc_datetime(&t));
    }
    let n: i64 = s.parse().ok()?;
    // Below 10^11 it is seconds (until the year 5138), else milliseconds.
    if n.abs() < 100_000_000_000 {
        Utc.timestamp_opt(n, 0).single()
    } else {
        Utc.timestamp_millis_opt(n).single()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn english_text_with_emoji_labels() {
        let a = parse(
            "🚨 New alert\n🪙 Ticker: BINANCE:BTCUSDT\n💰 Price: $67,890.50\n📊 Signal: Bullish divergence\n📈 Indicator: RSI Pro\n",
        )
        .expect("parses");
        assert_eq!(a.ticker, "BINANCE:BTCUSDT");
        assert_eq!(a.exchange.as_deref(), Some("BINANCE"));
        assert_eq!(a.symbol, "BTCUSDT");
        assert_eq!(a.price, Some(dec("67890.50")));
        assert_eq!(a.signal_type, "Bullish divergence");
        assert_eq!(a.indicator.as_deref(), Some("RSI Pro"));
    }

    #[test]
    fn spanish_labels() {
        let a = parse(
            "🪙 Ticker: nasdaq:aapl\n💰 Precio: 1.234,5 €\n📊 Señal: Compra\n🔧 Indicador: MACD",
        )
        .expect("parses");
        assert_eq!(a.exchange.as_deref(), Some("NASDAQ"));
        assert_eq!(a.symbol, "AAPL");
        assert_eq!(a.price, Some(dec("1234.5")));
        assert_eq!(a.signal_type, "Compra");
        assert_eq!(a.indicator.as_deref(), Some("MACD"));
    }

    #[test]
    fn json_bodies() {
        let a = parse(
            r#"{"ticker":"ETHUSDT","exchange":"bybit","price":3456.7,"action":"sell","time":"2026-11-22T10:00:00Z"}"#,
        )
        .expect("parses");
        assert_eq!(a.exchange.as_deref(), Some("BYBIT"));
        assert_eq!(a.symbol, "ETHUSDT");
        assert_eq!(a.price, Some(dec("3456.7")));
        assert_eq!(a.signal_type, "sell");
        assert_eq!(
            a.alert_time.map(|t| t.to_rfc3339()),
            Some("2026-11-22T10:00:00+00:00".into())
        );
    }

    #[test]
    fn prices_in_every_convention() {
        for (raw, want) in [
            ("67890.50", "67890.50"),
            ("$67,890.50", "67890.50"),
            ("67.890,50 €", "67890.50"),
            ("1,234", "1234"),
            ("0,5", "0.5"),
            ("1.234.567", "1234567"),
            ("USD 12", "12"),
            ("42 USDT", "42"),
            ("1 234,56", "1234.56"),
        ] {
            assert_eq!(parse_price(raw), Some(dec(want)), "{raw}");
        }
        for raw in ["", "abc", "{{close}}", "1.2.3,4,5", "-5", "1e5"] {
            assert_eq!(parse_price(raw), None, "{raw}");
        }
    }

    #[test]
    fn what_is_missing_or_wrong_is_named() {
        assert_eq!(parse("  \n "), Err(ParseError::Empty));
        assert_eq!(
            parse("Price: 5\nSignal: buy"),
            Err(ParseError::Missing("ticker", "Ticker"))
        );
        assert_eq!(
            parse("Ticker: BTCUSD"),
            Err(ParseError::Missing("signal", "Signal"))
        );
        assert!(matches!(
            parse("Ticker: BTC\nSignal: buy\nPrice: {{close}}"),
            Err(ParseError::BadValue { field: "price", .. })
        ));
        assert!(matches!(
            parse("Ticker: <script>\nSignal: buy"),
            Err(ParseError::BadValue {
                field: "ticker",
                ..
            })
        ));
        assert!(matches!(parse("{\"ticker\": "), Err(ParseError::Json(_))));
        assert!(matches!(parse("[1,2]"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(&"x".repeat(MAX_ALERT_BYTES + 1)),
            Err(ParseError::TooLarge(_))
        ));
    }

    #[test]
    fn unix_times_in_seconds_or_milliseconds() {
        let s = parse("Ticker: A\nSignal: b\nTime: 1700000000").expect("parses");
        let ms = parse("Ticker: A\nSignal: b\nTime: 1700000000000").expect("parses");
        assert_eq!(s.alert_time, ms.alert_time);
    }
}
