//! The message parser: what TradingView sends to a webhook, as a structured
//! signal.
//!
//! Two shapes are accepted:
//! - a JSON object, with keys such as `ticker`, `exchange`, `price`,
//!   `signal`, `indicator`, `time` (English or Spanish, any case);
//! - plain text of `Label: value` lines, where a label may start with emoji
//!   or other decoration (`🪙 Ticker: BINANCE:BTCUSDT`, `💰 Precio: $67,890.50`).
//!
//! A ticker `EXCHANGE:SYMBOL` is split in two. A price is one unambiguous
//! number in the application's convention (a decimal point by default). Labels
//! match a fixed list (English and Spanish) or configured aliases exactly;
//! a line with any other label is ignored whole. A body without a ticker,
//! a signal or (by default) a usable price is refused with the reason; an
//! optional field that cannot be used is left out and named in
//! `Message::ignored`. The grammar is written down in `docs/trading.md`.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The largest message body accepted, bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The ticker as sent, upper-cased (`BINANCE:BTCUSDT`).
    pub ticker: String,
    /// The exchange, from the ticker prefix or its own field.
    pub exchange: Option<String>,
    /// The symbol (`BTCUSDT`).
    pub symbol: String,
    /// The price, when given.
    pub price: Option<Decimal>,
    /// What the message says happened (`Bullish divergence`, `buy`).
    pub signal_type: String,
    /// The indicator or strategy that fired.
    pub indicator: Option<String>,
    /// When the message fired, when given.
    pub alert_time: Option<DateTime<Utc>>,
    /// Free text (`notes`).
    pub notes: Option<String>,
    /// Optional fields that were given but could not be used, each with
    /// the reason (the message was stored without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

/// Why a body is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the message is empty")]
    Empty,
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("the message is {0} bytes; at most {MAX_MESSAGE_BYTES} are accepted")]
    TooLarge(usize),
    /// Starts like JSON but is not a JSON object.
    #[error("the message looks like JSON but is not a JSON object: {0}")]
    Json(String),
    /// A required field is missing.
    #[error("the message has no {0} (expected a `{1}` field or line)")]
    Missing(&'static str, &'static str),
    /// A field has a value that cannot be used.
    #[error("the message's {field} {value:?} {problem}")]
    BadValue {
        /// Which field.
        field: &'static str,
        /// The value as sent (cut to 80 characters).
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The fields a message can carry; what a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageField {
    /// `EXCHANGE:SYMBOL` or `SYMBOL` (required).
    Ticker,
    /// The exchange, when the ticker has no prefix (optional).
    Exchange,
    /// The price (required unless [`ParseOptions::price_required`] is off).
    Price,
    /// What happened (required).
    Signal,
    /// The indicator or strategy that fired (optional).
    Indicator,
    /// When it fired (optional).
    Time,
    /// Free text (optional).
    Notes,
}

impl MessageField {
    /// Its name in messages and in the config's alias list.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageField::Ticker => "ticker",
            MessageField::Exchange => "exchange",
            MessageField::Price => "price",
            MessageField::Signal => "signal",
            MessageField::Indicator => "indicator",
            MessageField::Time => "time",
            MessageField::Notes => "notes",
        }
    }

    /// The field a name (as [`as_str`](Self::as_str) gives it) stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match fold(name).as_str() {
            "ticker" => MessageField::Ticker,
            "exchange" => MessageField::Exchange,
            "price" => MessageField::Price,
            "signal" => MessageField::Signal,
            "indicator" => MessageField::Indicator,
            "time" => MessageField::Time,
            "notes" => MessageField::Notes,
            _ => return None,
        })
    }
}

/// The labels every message may use, folded (see [`fold`]): one English and
/// one Spanish name per field, and `symbol`/`símbolo` for the ticker.
/// Anything else is unknown unless the options list it as an alias.
const LABELS: &[(&str, MessageField)] = &[
    ("ticker", MessageField::Ticker),
    ("symbol", MessageField::Ticker),
    ("simbolo", MessageField::Ticker),
    ("exchange", MessageField::Exchange),
    ("bolsa", MessageField::Exchange),
    ("price", MessageField::Price),
    ("precio", MessageField::Price),
    ("signal", MessageField::Signal),
    ("senal", MessageField::Signal),
    ("indicator", MessageField::Indicator),
    ("indicador", MessageField::Indicator),
    ("time", MessageField::Time),
    ("hora", MessageField::Time),
    ("notes", MessageField::Notes),
    ("notas", MessageField::Notes),
];

/// The aliases used when the config gives none: the names TradingView's
/// own placeholders and strategy messages put in JSON bodies.
pub const DEFAULT_ALIASES: &[(&str, MessageField)] = &[
    ("close", MessageField::Price),
    ("timenow", MessageField::Time),
    ("action", MessageField::Signal),
];

/// How messages are read (per application; see `docs/trading.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// A signal without a usable price is refused (the default: win rates
    /// are computed from prices). Off: stored without a price.
    pub price_required: bool,
    /// Numbers are written with a decimal comma and dots between thousands
    /// (`1.234.567,89`). Off (the default): a decimal point and commas
    /// between thousands (`1,234,567.89`).
    pub decimal_comma: bool,
    /// Labels besides the fixed English and Spanish ones, folded, each naming a
    /// field.
    pub aliases: Vec<(String, MessageField)>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            price_required: true,
            decimal_comma: false,
            aliases: DEFAULT_ALIASES
                .iter()
                .map(|(label, field)| ((*label).to_owned(), *field))
                .collect(),
        }
    }
}

impl ParseOptions {
    /// The field `label` names: one of [`LABELS`] or an alias, matched
    /// exactly after folding (case, accents, decoration around it).
    fn field_of(&self, label: &str) -> Option<MessageField> {
        let l = fold(label);
        LABELS
            .iter()
            .find(|(known, _)| *known == l)
            .map(|(_, f)| *f)
            .or_else(|| {
                self.aliases
                    .iter()
                    .find(|(alias, _)| fold(alias) == l)
                    .map(|(_, f)| *f)
            })
    }
}

/// Lower-case, Spanish accents removed, decoration around it (emoji,
/// spaces, punctuation) trimmed.
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

/// A field's value as sent: text, a JSON number (read with a decimal point
/// whatever the locale), or a JSON value that is neither.
#[derive(Debug, Clone)]
enum Raw {
    Text(String),
    Number(String),
    Unusable(String),
}

impl Raw {
    fn shown(&self) -> &str {
        match self {
            Raw::Text(s) | Raw::Number(s) | Raw::Unusable(s) => s,
        }
    }
}

#[derive(Default)]
struct Fields {
    ticker: Option<Raw>,
    exchange: Option<Raw>,
    price: Option<Raw>,
    signal: Option<Raw>,
    indicator: Option<Raw>,
    time: Option<Raw>,
    notes: Option<Raw>,
}

impl Fields {
    fn set(&mut self, field: MessageField, value: Raw) {
        if let Raw::Text(t) = &value
            && t.trim().is_empty()
        {
            return;
        }
        let slot = match field {
            MessageField::Ticker => &mut self.ticker,
            MessageField::Exchange => &mut self.exchange,
            MessageField::Price => &mut self.price,
            MessageField::Signal => &mut self.signal,
            MessageField::Indicator => &mut self.indicator,
            MessageField::Time => &mut self.time,
            MessageField::Notes => &mut self.notes,
        };
        // The first occurrence of a field wins.
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

/// Parse a message body with the default options.
pub fn parse(body: &str) -> Result<Message, ParseError> {
    parse_with(body, &ParseOptions::default())
}

/// Parse a message body.
pub fn parse_with(body: &str, options: &ParseOptions) -> Result<Message, ParseError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(body.len()));
    }
    let body = body.trim_start_matches('\u{feff}').trim();
    if body.is_empty() {
        return Err(ParseError::Empty);
    }
    let fields = if body.starts_with('{') || body.starts_with('[') {
        from_json(body, options)?
    } else {
        from_lines(body, options)
    };
    build(fields, options)
}

fn from_json(body: &str, options: &ParseOptions) -> Result<Fields, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ParseError::Json("the top level is not an object".into()));
    };
    let mut fields = Fields::default();
    for (key, value) in map {
        let Some(field) = options.field_of(&key) else {
            continue;
        };
        let raw = match value {
            serde_json::Value::String(s) => Raw::Text(s),
            serde_json::Value::Number(n) => Raw::Number(n.to_string()),
            serde_json::Value::Bool(b) => Raw::Text(b.to_string()),
            other => Raw::Unusable(cut(&other.to_string(), 80)),
        };
        fields.set(field, raw);
    }
    Ok(fields)
}

fn from_lines(body: &str, options: &ParseOptions) -> Fields {
    let mut fields = Fields::default();
    for line in body.lines() {
        // The label is the text before the line's first colon (also a
        // full-width one); a line without one may use `=`.
        let colon = [line.find(':'), line.find('：')]
            .into_iter()
            .flatten()
            .min();
        let split = match colon {
            Some(at) => {
                let sep = line[at..].chars().next().map_or(1, char::len_utf8);
                Some((&line[..at], &line[at + sep..]))
            }
            None => line.split_once('='),
        };
        let Some((label, value)) = split else {
            continue;
        };
        // An unknown label: the whole line is ignored.
        if let Some(field) = options.field_of(label) {
            fields.set(field, Raw::Text(value.trim().to_owned()));
        }
    }
    fields
}

fn build(f: Fields, options: &ParseOptions) -> Result<Message, ParseError> {
    let mut ignored = Vec::new();
    let required = |raw: Option<Raw>, field: &'static str, label: &'static str| match raw {
        None => Err(ParseError::Missing(field, label)),
        Some(Raw::Unusable(v)) => Err(bad(field, &v, "is not text")),
        Some(r) => Ok(r.shown().trim().to_owned()),
    };
    let ticker_raw = required(f.ticker, "ticker", "Ticker")?;
    let signal_type = required(f.signal, "signal", "Signal")?;
    let ticker = ticker_raw.to_uppercase();
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
        (None, Some(raw)) => {
            let e = raw.shown().trim().to_uppercase();
            if matches!(raw, Raw::Unusable(_)) || !valid(&e) {
                ignored.push(ignore("exchange", raw.shown(), "is not an exchange name"));
                None
            } else {
                Some(e)
            }
        }
        (None, None) => None,
    };
    let price = match f.price {
        None if options.price_required => return Err(ParseError::Missing("price", "Price")),
        None => None,
        Some(raw) => {
            let parsed = match &raw {
                Raw::Number(n) => parse_price_in(n, false),
                Raw::Text(t) => parse_price_in(t, options.decimal_comma),
                Raw::Unusable(_) => None,
            };
            match parsed {
                Some(p) if p >= max_price() => {
                    if options.price_required {
                        return Err(bad("price", raw.shown(), PRICE_TOO_LARGE));
                    }
                    ignored.push(ignore("price", raw.shown(), PRICE_TOO_LARGE));
                    None
                }
                Some(p) => Some(p),
                None if options.price_required => {
                    return Err(bad("price", raw.shown(), PRICE_PROBLEM));
                }
                None => {
                    ignored.push(ignore("price", raw.shown(), PRICE_PROBLEM));
                    None
                }
            }
        }
    };
    let alert_time = match f.time {
        None => None,
        Some(raw) => match (&raw, parse_time(raw.shown())) {
            (Raw::Unusable(_), _) | (_, None) => {
                ignored.push(ignore(
                    "time",
                    raw.shown(),
                    "is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS or Unix seconds)",
                ));
                None
            }
            (_, Some(t)) if !storable_time(t) => {
                ignored.push(ignore("time", raw.shown(), "is not in the years 1 to 9999"));
                None
            }
            (_, Some(t)) => Some(t),
        },
    };
    let text =
        |raw: Option<Raw>, field: &'static str, max: usize, ignored: &mut Vec<String>| match raw {
            Some(Raw::Unusable(v)) => {
                ignored.push(ignore(field, &v, "is not text"));
                None
            }
            Some(r) => Some(cut(r.shown(), max)),
            None => None,
        };
    let indicator = text(f.indicator, "indicator", 200, &mut ignored);
    let notes = text(f.notes, "notes", 2000, &mut ignored);
    Ok(Message {
        ticker,
        exchange,
        symbol,
        price,
        signal_type: cut(&signal_type, 200),
        indicator,
        alert_time,
        notes,
        ignored,
    })
}

/// What is wrong with a price that is refused.
const PRICE_PROBLEM: &str = "is not one unambiguous number (like 67,890.50 or 67890.5 USDT)";

/// What is wrong with a price too large to store.
const PRICE_TOO_LARGE: &str = "is too large (at most 20 digits before the decimal point)";

/// The smallest price too large for the `price numeric(30,10)` column:
/// 10^20.
fn max_price() -> Decimal {
    Decimal::from_i128_with_scale(100_000_000_000_000_000_000, 0)
}

/// Whether `t` can be stored as a `timestamptz` and shown back: the years
/// 1 to 9999 (PostgreSQL refuses times before 4713 BC; RFC 3339 writes
/// only four-digit years).
pub fn storable_time(t: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&t.year())
}

/// Why an optional field was left out.
fn ignore(field: &str, value: &str, problem: &str) -> String {
    format!("{field} {:?} {problem}; stored without it", cut(value, 80))
}

fn bad(field: &'static str, value: &str, problem: &'static str) -> ParseError {
    ParseError::BadValue {
        field,
        value: cut(value, 80),
        problem,
    }
}

/// `s` trimmed to `max_chars`, without NUL characters: PostgreSQL's
/// text cannot hold them, and every text a message stores or a message shows
/// goes through here.
fn cut(s: &str, max_chars: usize) -> String {
    s.trim()
        .chars()
        .filter(|c| *c != '\0')
        .take(max_chars)
        .collect()
}

/// A price written with a decimal point (see [`parse_price_in`]).
pub fn parse_price(raw: &str) -> Option<Decimal> {
    parse_price_in(raw, false)
}

/// A non-negative price: digits with thousands separators in groups of
/// three and at most one decimal separator (a point, or with
/// `decimal_comma` a comma), between an optional currency before it (`$`,
/// `USD `) and after it (` USDT`, ` €`). `None` for anything else: no
/// guess is made (`12.34.56`, `0,5` with a decimal point, `1e5`, `NaN`,
/// `-5`).
pub fn parse_price_in(raw: &str, decimal_comma: bool) -> Option<Decimal> {
    let s = raw.trim();
    let first = s.find(|c: char| c.is_ascii_digit())?;
    let last = s.rfind(|c: char| c.is_ascii_digit())?;
    let currency = |part: &str| {
        part.chars()
            .all(|c| c.is_alphabetic() || c.is_whitespace() || "$€£¥₿₮".contains(c))
    };
    if !currency(&s[..first]) || !currency(&s[last + 1..]) {
        return None;
    }
    let number = &s[first..=last];
    let (point, thousands) = if decimal_comma {
        (',', '.')
    } else {
        ('.', ',')
    };
    let (whole, fraction) = match number.split_once(point) {
        Some((w, f)) => (w, Some(f)),
        None => (number, None),
    };
    if let Some(f) = fraction
        && !f.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut groups = whole.split(thousands);
    let head = groups.next()?;
    let digits = |g: &str| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit());
    if !digits(head) {
        return None;
    }
    let mut plain = head.to_owned();
    let mut grouped = false;
    for g in groups {
        if g.len() != 3 || !digits(g) {
            return None;
        }
        grouped = true;
        plain.push_str(g);
    }
    if grouped && head.len() > 3 {
        return None;
    }
    if let Some(f) = fraction {
        plain.push('.');
        plain.push_str(f);
    }
    plain.parse::<Decimal>().ok()
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
    fn values_postgresql_cannot_store_are_cleaned_or_refused() {
        let a = parse(
            "Ticker: BINANCE:BTCUSDT\nSignal: bu\u{0}y\nPrice: 1\nIndicator: R\u{0}SI\nNotes: a\u{0}b",
        )
        .expect("parses");
        assert_eq!(
            (
                a.signal_type.as_str(),
                a.indicator.as_deref(),
                a.notes.as_deref()
            ),
            ("buy", Some("RSI"), Some("ab"))
        );
        let json = parse(r#"{"ticker":"X:Y","signal":"buy\u0000","price":"1"}"#).expect("parses");
        assert_eq!(json.signal_type, "buy");
        // A NUL in the ticker: refused, and the message holds none.
        let e = parse("Ticker: X\u{0}Y\nSignal: b\nPrice: 1").expect_err("ticker");
        assert!(!e.to_string().contains('\0'), "{e}");
        // 10^20 and more do not fit numeric(30,10); just below does.
        let e = parse("Ticker: X\nSignal: b\nPrice: 100000000000000000000").expect_err("price");
        assert!(e.to_string().contains("too large"), "{e}");
        assert!(parse("Ticker: X\nSignal: b\nPrice: 1e25").is_err());
        let below =
            parse("Ticker: X\nSignal: b\nPrice: 99,999,999,999,999,999,999.9999").expect("price");
        assert_eq!(below.price, Some(dec("99999999999999999999.9999")));
        let optional = ParseOptions {
            price_required: false,
            ..ParseOptions::default()
        };
        let a = parse_with(
            "Ticker: X\nSignal: b\nPrice: 123456789012345678901234",
            &optional,
        )
        .expect("parses");
        assert_eq!(a.price, None);
        assert!(a.ignored[0].contains("too large"), "{:?}", a.ignored);
        // Before 4713 BC (and after 9999): stored without the time.
        for time in ["-300000000000000", "300000000000000"] {
            let a =
                parse(&format!("Ticker: X\nSignal: b\nPrice: 1\nTime: {time}")).expect("parses");
            assert_eq!(a.alert_time, None, "{time}");
            assert!(a.ignored[0].contains("years 1 to 9999"), "{:?}", a.ignored);
        }
    }

    #[test]
    fn english_text_with_emoji_labels() {
        let a = parse(
            "🚨 New message\n🪙 Ticker: BINANCE:BTCUSDT\n💰 Price: $67,890.50\n📊 Signal: Bullish divergence\n📈 Indicator: RSI Pro\n",
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
    fn spanish_labels_and_a_decimal_comma_when_configured() {
        let body =
            "🪙 Ticker: nasdaq:aapl\n💰 Precio: 1.234,5 €\n📊 Señal: Compra\n🔧 Indicador: MACD";
        let comma = ParseOptions {
            decimal_comma: true,
            ..ParseOptions::default()
        };
        let a = parse_with(body, &comma).expect("parses");
        assert_eq!(a.exchange.as_deref(), Some("NASDAQ"));
        assert_eq!(a.symbol, "AAPL");
        assert_eq!(a.price, Some(dec("1234.5")));
        assert_eq!(a.signal_type, "Compra");
        assert_eq!(a.indicator.as_deref(), Some("MACD"));
        // With the default decimal point the same price is refused.
        assert!(matches!(
            parse(body),
            Err(ParseError::BadValue { field: "price", .. })
        ));
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
        // A JSON number is read with a decimal point in any locale.
        let comma = ParseOptions {
            decimal_comma: true,
            ..ParseOptions::default()
        };
        let b =
            parse_with(r#"{"ticker":"A","signal":"b","price":1234.5}"#, &comma).expect("parses");
        assert_eq!(b.price, Some(dec("1234.5")));
    }

    #[test]
    fn prices_are_one_unambiguous_number_or_refused() {
        for (raw, want) in [
            ("67890.50", "67890.50"),
            ("$67,890.50", "67890.50"),
            ("67890.5 USDT", "67890.5"),
            ("3,346.75", "3346.75"),
            ("1,234", "1234"),
            ("1,234,567.89", "1234567.89"),
            ("USD 12", "12"),
            ("42 USDT", "42"),
            ("0.00001234", "0.00001234"),
        ] {
            assert_eq!(parse_price(raw), Some(dec(want)), "{raw}");
        }
        for raw in [
            "",
            "abc",
            "{{close}}",
            "12.34.56",
            "1.234.567,89",
            "67.890,50",
            "0,5",
            "1 234,56",
            "1.2.3,4,5",
            "-5",
            "+5",
            "1e5",
            "NaN",
            "Infinity",
            "12,34",
            "1234,567",
            "5 (approx)",
            "1,234.5.6",
        ] {
            assert_eq!(parse_price(raw), None, "{raw}");
        }
        for (raw, want) in [
            ("1.234.567,89", "1234567.89"),
            ("0,5", "0.5"),
            ("67.890,50 €", "67890.50"),
        ] {
            assert_eq!(parse_price_in(raw, true), Some(dec(want)), "{raw}");
        }
        for raw in ["12.34.56", "1,234.56", "1.23"] {
            assert_eq!(parse_price_in(raw, true), None, "{raw}");
        }
    }

    #[test]
    fn a_signal_without_a_usable_price_is_refused_unless_allowed() {
        let lenient = ParseOptions {
            price_required: false,
            ..ParseOptions::default()
        };
        for body in [
            "Ticker: A\nSignal: buy",
            "Ticker: A\nSignal: buy\nPrice: ",
            r#"{"ticker":"A","signal":"buy","price":null}"#,
            r#"{"ticker":"A","signal":"buy","price":{"value":5}}"#,
            r#"{"ticker":"A","signal":"buy","price":""}"#,
        ] {
            let refused = parse(body).expect_err(body);
            assert!(refused.to_string().contains("price"), "{body}: {refused}");
            let kept = parse_with(body, &lenient).expect(body);
            assert_eq!(kept.price, None, "{body}");
        }
        let ambiguous =
            parse_with("Ticker: A\nSignal: buy\nPrice: 12.34.56", &lenient).expect("kept");
        assert_eq!(ambiguous.price, None);
        assert_eq!(ambiguous.ignored.len(), 1, "{:?}", ambiguous.ignored);
    }

    #[test]
    fn an_optional_field_that_cannot_be_used_is_left_out_with_its_reason() {
        let a = parse(
            "🪙 Ticker: BTCUSDT\n💰 Price: 5\n📊 Signal: buy\n🕒 Hora: 14:05 UTC\nExchange: <b>",
        )
        .expect("the message is kept");
        assert_eq!(a.alert_time, None);
        assert_eq!(a.exchange, None);
        assert_eq!(a.ignored.len(), 2, "{:?}", a.ignored);
        assert!(a.ignored[0].starts_with("exchange") || a.ignored[1].starts_with("exchange"));
        assert!(
            a.ignored.iter().any(|r| r.contains("14:05 UTC")),
            "{:?}",
            a.ignored
        );
        let j = parse(r#"{"ticker":"A","signal":"b","price":1,"time":[1],"indicator":{"x":1}}"#)
            .expect("kept");
        assert_eq!((j.alert_time, j.indicator), (None, None));
        assert_eq!(j.ignored.len(), 2, "{:?}", j.ignored);
    }

    #[test]
    fn a_label_is_the_text_before_the_first_colon_and_must_be_known() {
        // `Message` is not a label: the line is ignored whole, not read as a
        // ticker inside a value.
        assert_eq!(
            parse("Message: Ticker: FAKE:XYZ\nSignal: buy\nPrice: 1"),
            Err(ParseError::Missing("ticker", "Ticker"))
        );
        let a = parse("Ticker: BINANCE:BTCUSDT\nAlert: Ticker: FAKE:XYZ\nSignal: buy\nPrice: 1")
            .expect("parses");
        assert_eq!(a.ticker, "BINANCE:BTCUSDT");
        assert_eq!(a.signal_type, "buy");
        // Unknown labels are not aliases: the real Indicator line wins.
        let b = parse("Strategy: Trend v2\nEstrategia: Tendencia v2\nTicker: A\nSignal: b\nPrice: 1\nIndicator: RSI")
            .expect("parses");
        assert_eq!(b.indicator.as_deref(), Some("RSI"));
        // The first occurrence of a known label wins.
        let c = parse("Ticker: A\nSignal: first\nSeñal: second\nPrice: 1").expect("parses");
        assert_eq!(c.signal_type, "first");
    }

    #[test]
    fn configured_aliases_name_fields() {
        let options = ParseOptions {
            aliases: vec![("Strategy".to_owned(), MessageField::Indicator)],
            ..ParseOptions::default()
        };
        let a = parse_with(
            "🧠 strategy: Trend v2\nTicker: A\nSignal: b\nPrice: 1",
            &options,
        )
        .expect("parses");
        assert_eq!(a.indicator.as_deref(), Some("Trend v2"));
        // Without the defaults, `close` names nothing.
        assert!(parse_with(r#"{"ticker":"A","signal":"b","close":1}"#, &options).is_err());
        assert!(parse(r#"{"ticker":"A","signal":"b","close":1}"#).is_ok());
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
            parse("Ticker: <script>\nSignal: buy\nPrice: 1"),
            Err(ParseError::BadValue {
                field: "ticker",
                ..
            })
        ));
        assert!(matches!(parse("{\"ticker\": "), Err(ParseError::Json(_))));
        assert!(matches!(parse("[1,2]"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(&"x".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(ParseError::TooLarge(_))
        ));
    }

    #[test]
    fn unix_times_in_seconds_or_milliseconds() {
        let s = parse("Ticker: A\nSignal: b\nPrice: 1\nTime: 1700000000").expect("parses");
        let ms = parse("Ticker: A\nSignal: b\nPrice: 1\nTime: 1700000000000").expect("parses");
        assert_eq!(s.alert_time, ms.alert_time);
    }
}
