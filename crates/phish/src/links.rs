//! Links in a message: anchors of the HTML part (target and the text a reader sees), form
//! actions, and bare URLs in the text; and the host of a URL.

/// One link as the reader meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    /// What the reader sees (anchor text), if the link came from HTML.
    pub text: Option<String>,
    /// A form's action rather than an anchor.
    pub form: bool,
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// The value of attribute `name` in the tag text `tag` (`<a href="…" …>`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let lt = lower(tag);
    let mut from = 0;
    while let Some(p) = lt[from..].find(name) {
        let at = from + p;
        from = at + name.len();
        let before_ok = at == 0 || lt.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lt[at + name.len()..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let vstart = tag.len() - rest.len() + 1;
        let v = tag[vstart..].trim_start();
        let (val, _) = match v.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &v[1..];
                (inner.split(q).next().unwrap_or(""), ())
            }
            _ => (
                v.split(|c: char| c.is_whitespace() || c == '>')
                    .next()
                    .unwrap_or(""),
                (),
            ),
        };
        return Some(decode_entities(val.trim()));
    }
    None
}

/// Enough HTML entity decoding for URLs and anchor text.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|&e| e <= 10);
        match end {
            Some(e) => {
                let ent = &rest[1..e];
                let ch = match ent {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some(' '),
                    _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                        u32::from_str_radix(&ent[2..], 16)
                            .ok()
                            .and_then(char::from_u32)
                    }
                    _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
                    _ => None,
                };
                match ch {
                    Some(c) => {
                        out.push(c);
                        rest = &rest[e + 1..];
                    }
                    None => {
                        out.push('&');
                        rest = &rest[1..];
                    }
                }
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of an HTML fragment: tags dropped, entities decoded, space folded.
pub fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    let mut skip_until: Option<&str> = None;
    let lower_html = lower(html);
    let mut i = 0;
    let b = html.as_bytes();
    while i < b.len() {
        if let Some(end) = skip_until {
            match lower_html[i..].find(end) {
                Some(p) => {
                    i += p + end.len();
                    skip_until = None;
                    in_tag = false;
                    continue;
                }
                None => break,
            }
        }
        let c = b[i];
        if c == b'<' {
            in_tag = true;
            if lower_html[i..].starts_with("<style") {
                skip_until = Some("</style>");
            } else if lower_html[i..].starts_with("<script") {
                skip_until = Some("</script>");
            }
            out.push(' ');
        } else if c == b'>' && in_tag {
            in_tag = false;
        } else if !in_tag {
            let ch_len = utf8_len(c);
            if let Some(s) = html.get(i..i + ch_len) {
                out.push_str(s);
            }
            i += ch_len;
            continue;
        }
        i += 1;
    }
    let decoded = decode_entities(&out);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// Anchors (`<a href>`, `<area href>`) and form actions of an HTML part.
pub fn html_links(html: &str, max: usize) -> Vec<Link> {
    let lh = lower(html);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = lh[i..].find('<') {
        if out.len() >= max {
            break;
        }
        let start = i + p;
        let Some(close) = lh[start..].find('>') else {
            break;
        };
        let tag = &html[start..start + close + 1];
        let ltag = &lh[start..start + close + 1];
        i = start + close + 1;
        let is = |name: &str| {
            ltag.starts_with(name)
                && ltag[name.len()..].starts_with(|c: char| c.is_whitespace() || c == '>')
        };
        if is("<a") || is("<area") {
            let Some(href) = attr(tag, "href") else {
                continue;
            };
            let text = match lh[i..].find("</a") {
                Some(e) if is("<a") => Some(html_text(&html[i..i + e])),
                _ => None,
            };
            out.push(Link {
                url: href,
                text,
                form: false,
            });
        } else if is("<iframe") || is("<frame") {
            if let Some(src) = attr(tag, "src") {
                out.push(Link {
                    url: src,
                    text: None,
                    form: false,
                });
            }
        } else if is("<form")
            && let Some(action) = attr(tag, "action")
        {
            out.push(Link {
                url: action,
                text: None,
                form: true,
            });
        }
    }
    out
}

/// Bare URLs (`http://`, `https://`, `www.`) in plain text.
pub fn text_links(text: &str, max: usize) -> Vec<Link> {
    let mut out = Vec::new();
    let lt = lower(text);
    let mut i = 0;
    while out.len() < max {
        let next = ["http://", "https://", "www."]
            .iter()
            .filter_map(|p| lt[i..].find(p).map(|x| i + x))
            .min();
        let Some(start) = next else { break };
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || "<>\"'()[]{}、。「」".contains(c) || !c.is_ascii())
            .map_or(text.len(), |e| start + e);
        let url = text[start..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        if url.len() > 4 {
            out.push(Link {
                url: url.to_owned(),
                text: None,
                form: false,
            });
        }
        i = end.max(start + 1);
        if i >= text.len() {
            break;
        }
    }
    out
}

/// The host of a URL (lowercase, no user info or port), or `None` for mailto:, relative
/// links and the like.
pub fn host_of(url: &str) -> Option<String> {
    let u = url.trim();
    let lu = lower(u);
    let rest = if let Some(r) = lu
        .strip_prefix("http://")
        .or_else(|| lu.strip_prefix("https://"))
    {
        r
    } else if lu.starts_with("www.") {
        &lu[..]
    } else {
        lu.strip_prefix("//")?
    };
    let authority = percent_decode(rest.split(['/', '?', '#', '\\']).next().unwrap_or(""));
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if hostport.starts_with('[') {
        hostport
            .split(']')
            .next()
            .map(|h| h.trim_start_matches('['))?
            .to_owned()
    } else {
        hostport
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let host = host.trim_end_matches('.').to_owned();
    (!host.is_empty()).then_some(host)
}

/// The port of a URL when it names one other than 80 and 443.
pub fn unusual_port(url: &str) -> Option<u16> {
    let lu = url.trim().to_ascii_lowercase();
    let rest = lu
        .strip_prefix("http://")
        .or_else(|| lu.strip_prefix("https://"))?;
    let authority = percent_decode(rest.split(['/', '?', '#']).next().unwrap_or(""));
    let hostport = authority.rsplit('@').next().unwrap_or("").to_owned();
    let port: u16 = hostport.rsplit_once(':')?.1.parse().ok()?;
    (port != 80 && port != 443).then_some(port)
}

/// `%XX` escapes decoded (invalid ones kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| char::from(c).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a host is an IP address literal (dotted quad, IPv6, or a single number).
pub fn is_ip_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_digit()))
        || (host.starts_with("0x")
            && host.len() > 2
            && host[2..].bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_forms_and_text() {
        let html = r#"<p>Dear member, <A HREF="http://210.1.2.3/ebay/login.php">https://signin.ebay.com/verify</A>
            <a class=x href='https://www.paypal.com/'>PayPal</a> <form method=post action="http://evil.example/cgi">
            <a>no href</a>"#;
        let l = html_links(html, 50);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].url, "http://210.1.2.3/ebay/login.php");
        assert_eq!(l[0].text.as_deref(), Some("https://signin.ebay.com/verify"));
        assert!(l[2].form);
        let t = text_links(
            "visit http://www.americeexpre.account-login.qkdbq.com/Xapz.php now, or www.ebay.com.",
            10,
        );
        assert_eq!(
            t[0].url,
            "http://www.americeexpre.account-login.qkdbq.com/Xapz.php"
        );
        assert_eq!(t[1].url, "www.ebay.com");
        assert_eq!(
            host_of("http://user@WWW.Example.COM:8080/x").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(host_of("mailto:x@y.z"), None);
        assert!(is_ip_host("210.1.2.3") && is_ip_host("3512041827") && !is_ip_host("ebay.com"));
        let enc = "http://%31%39%35%2E%31%34%36%2E%39%39%2E%31%38%30:%38%37/%73%74/";
        assert_eq!(host_of(enc).as_deref(), Some("195.146.99.180"));
        assert_eq!(unusual_port(enc), Some(87));
        assert_eq!(unusual_port("https://example.com:443/"), None);
        assert_eq!(
            host_of("http://www.ebay.com@61.1.2.3/x").as_deref(),
            Some("61.1.2.3")
        );
        assert_eq!(
            html_text("<b>a&amp;b</b>&#12354; <style>x{}</style>c"),
            "a&b あ c"
        );
    }
}
