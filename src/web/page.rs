//! HTML helpers for the status page: one self-contained page (inline CSS, no scripts), readable without
//! JavaScript and refreshed by the browser every 30 seconds.

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page around the sections.
pub fn layout(title: &str, body: &str) -> String {
    let title = escape(title);
    let body = if body.is_empty() {
        "<section><h2>Nothing to show yet</h2><p>No part is enabled in this config: add a \
         <code>[monitor]</code>, <code>[scale]</code> or <code>[deploy]</code> section.</p></section>"
    } else {
        body
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"30\"><title>{title}</title><style>{CSS}</style></head>\
         <body><header><h1>{title}</h1><nav><a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">health</a></nav>\
         </header><main>{body}</main><footer>tend {version}</footer></body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

const CSS: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}\
header{display:flex;justify-content:space-between;align-items:center;padding:.6em 1.2em;background:#1d232b;color:#fff}\
header a{color:#cfe3ff}h1{font-size:1.3em;margin:0}main{padding:1em 1.2em;max-width:1200px}\
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.8em 1em;margin-bottom:1em}\
h2{font-size:1.1em;margin:.2em 0 .6em}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #eef0f3;font-variant-numeric:tabular-nums}\
.up{color:#137333;font-weight:600}.down{color:#c5221f;font-weight:600}.unknown{color:#80868b}\
.muted{color:#80868b}footer{padding:1em 1.2em;color:#80868b;font-size:.85em}svg{vertical-align:middle}\
.swatch{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;border-radius:2px}\
.quiet{color:#b06000;font-size:.85em;font-weight:400}.legend{margin:.3em 0}h3{font-size:1em;margin:.6em 0 .3em}\
.nowrap{white-space:nowrap}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
