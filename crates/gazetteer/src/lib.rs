//! An embedded gazetteer of the world's cities with 1,000 or more inhabitants (GeoNames,
//! CC BY 4.0: see `data/NOTICE`), so that a merchant known only by its city and country (as
//! ISO 8583's DE43 gives them) has a place, and impossible travel works for it, with no
//! network lookup. Names are matched as DE43 carries them: upper-case ASCII, punctuation as
//! spaces, at most 13 characters. A name that several cities of a country share resolves to
//! the most populous. Pure: the table is compiled in and read on first use.

use std::sync::OnceLock;

/// A city's place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct City {
    pub lat: f64,
    pub lon: f64,
    pub population: u64,
}

/// The table: country, name, latitude and longitude in hundredths of a degree, population;
/// sorted by country and name.
const TABLE: &[u8] = include_bytes!("../data/cities.tsv.gz");

struct Gazetteer {
    text: String,
    /// Where each line starts, in table order.
    lines: Vec<u32>,
}

fn gazetteer() -> &'static Gazetteer {
    static G: OnceLock<Gazetteer> = OnceLock::new();
    G.get_or_init(|| {
        use std::io::Read;
        let mut text = String::new();
        // The table is compiled in and checked by the tests: it always decompresses.
        let _ = flate2::read::GzDecoder::new(TABLE).read_to_string(&mut text);
        let mut lines = Vec::with_capacity(130_000);
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            lines.push(at as u32);
            at += line.len();
        }
        Gazetteer { text, lines }
    })
}

/// Latin letters with accents and their base letters (the table was made by Unicode
/// decomposition: a letter without one, like Ø or ß, is dropped there and here).
const FOLD: [(&str, char); 17] = [
    ("ÀÁÂÃÄÅàáâãäåĀāĂăĄą", 'A'),
    ("ÇçĆćĈĉĊċČč", 'C'),
    ("ĎďÐ", 'D'),
    ("ÈÉÊËèéêëĒēĔĕĖėĘęĚě", 'E'),
    ("ĜĝĞğĠġĢģ", 'G'),
    ("Ĥĥ", 'H'),
    ("ÌÍÎÏìíîïĨĩĪīĬĭĮįİ", 'I'),
    ("Ĵĵ", 'J'),
    ("Ķķ", 'K'),
    ("ĹĺĻļĽľ", 'L'),
    ("ÑñŃńŅņŇň", 'N'),
    ("ÒÓÔÕÖòóôõöŌōŎŏŐő", 'O'),
    ("ŔŕŖŗŘř", 'R'),
    ("ŚśŜŝŞşŠšŢţŤť", 'S'),
    ("ÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲų", 'U'),
    ("ÝýÿŸŶŷ", 'Y'),
    ("ŹźŻżŽž", 'Z'),
];

/// A city name as DE43 carries it: upper-case ASCII letters and digits (accented Latin
/// letters as their base letter), everything else a space, spaces collapsed, at most 13
/// characters.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        let ch = if ch.is_ascii() {
            ch
        } else {
            FOLD.iter()
                .find(|(from, _)| from.contains(ch))
                .map_or(ch, |&(_, to)| to)
        };
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_uppercase());
        } else if ch.is_ascii() && !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    let mut out: String = out.chars().take(13).collect();
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

impl Gazetteer {
    fn line(&self, i: usize) -> &str {
        let start = self.lines[i] as usize;
        let end = self
            .lines
            .get(i + 1)
            .map_or(self.text.len(), |&e| e as usize);
        self.text[start..end].trim_end()
    }

    fn find(&self, country: &str, name: &str) -> Option<City> {
        let key = (country, name);
        let (mut lo, mut hi) = (0, self.lines.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let mut cols = self.line(mid).split('\t');
            let c = (cols.next()?, cols.next()?);
            match c.cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let mut num = || cols.next()?.parse::<i64>().ok();
                    let (lat, lon, population) = (num()?, num()?, num()?);
                    return Some(City {
                        lat: lat as f64 / 100.0,
                        lon: lon as f64 / 100.0,
                        population: population.max(0) as u64,
                    });
                }
            }
        }
        None
    }
}

/// The place of `city` in `country` (ISO 3166 alpha-2), if the gazetteer knows it.
pub fn lookup(country: &str, city: &str) -> Option<City> {
    let name = normalize(city);
    if name.is_empty() {
        return None;
    }
    gazetteer().find(&country.to_ascii_uppercase(), &name)
}

/// Cities in the table. The first call (or lookup) reads the table, about 30 ms: a front
/// door calls this before it takes traffic.
pub fn len() -> usize {
    gazetteer().lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_cities_are_where_they_are() {
        let t = lookup("JP", "TOKYO").unwrap();
        assert!(
            (t.lat - 35.69).abs() < 0.05 && (t.lon - 139.69).abs() < 0.05,
            "{t:?}"
        );
        // As DE43 writes them: upper case, padded, truncated to 13; "City" optional.
        assert!(lookup("US", "NEW YORK     ").is_some());
        assert_eq!(lookup("US", "new york"), lookup("US", "NEW YORK CITY"));
        assert!(lookup("GB", "London").is_some());
        assert!(
            lookup("FR", "Saint-Étienne").is_some(),
            "accents dropped, as in DE43"
        );
        assert!(lookup("JP", "NOWHERE AT ALL").is_none());
        assert!(lookup("XX", "TOKYO").is_none());
        assert!(len() > 100_000);
    }

    #[test]
    fn a_shared_name_is_the_most_populous_city_of_that_country() {
        // Several Springfields in the US; the largest is in Missouri (about 37.2 N, 93.3 W).
        let s = lookup("US", "SPRINGFIELD").unwrap();
        assert!(
            (s.lat - 37.2).abs() < 0.3 && (s.lon + 93.3).abs() < 0.3,
            "{s:?}"
        );
        // And a name resolves per country: Paris in France, not Texas.
        assert!(lookup("FR", "PARIS").unwrap().lon > 2.0);
    }

    #[test]
    fn names_normalize_as_de43_carries_them() {
        assert_eq!(normalize("  Rio de Janeiro!"), "RIO DE JANEIR");
        assert_eq!(normalize("St. John's"), "ST JOHN S");
        assert_eq!(normalize("東京"), "");
    }
}
