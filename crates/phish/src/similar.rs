//! How alike two domain labels are: edit distance, Jaro-Winkler, and a skeleton that folds
//! look-alike characters (Cyrillic and Greek letters that pass for Latin ones, digits that
//! pass for letters) as UTS #39 confusables do for the cases phishers use.

/// Damerau-Levenshtein distance (optimal string alignment) over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[n][m]
}

/// Jaro-Winkler similarity, 0 to 1.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_used = vec![false; b.len()];
    let mut a_matches = Vec::new();
    for (i, &c) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        if let Some(j) = (lo..hi).find(|&j| !b_used[j] && b[j] == c) {
            b_used[j] = true;
            a_matches.push(c);
        }
    }
    let m = a_matches.len();
    if m == 0 {
        return 0.0;
    }
    let b_matches: Vec<char> = b
        .iter()
        .zip(&b_used)
        .filter(|(_, u)| **u)
        .map(|(c, _)| *c)
        .collect();
    let t = a_matches
        .iter()
        .zip(&b_matches)
        .filter(|(x, y)| x != y)
        .count()
        / 2;
    let m = m as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - t as f64) / m) / 3.0;
    let prefix = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count() as f64;
    jaro + prefix * 0.1 * (1.0 - jaro)
}

/// Folds characters that look like others into the ASCII letter they imitate.
pub fn skeleton(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let f = match c {
            'а' | 'ɑ' | 'α' | 'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'е' | 'ё' | 'ε' | 'è' | 'é' | 'ê' | 'ë' => "e",
            'о' | 'ο' | 'σ' | 'ò' | 'ó' | 'ô' | 'õ' | 'ö' | '0' => "o",
            'р' | 'ρ' => "p",
            'с' | 'ϲ' | 'ç' => "c",
            'х' | 'χ' => "x",
            'у' | 'γ' | 'ý' | 'ÿ' => "y",
            'i' | 'і' | 'ı' | 'ι' | 'í' | 'ì' | 'î' | 'ï' | 'l' | '1' | '|' => "l",
            'ѕ' => "s",
            'ԁ' => "d",
            'ɡ' => "g",
            'һ' => "h",
            'ј' => "j",
            'к' | 'κ' => "k",
            'м' => "m",
            'п' | 'η' | 'ո' => "n",
            'т' | 'τ' => "t",
            'ν' | 'ѵ' => "v",
            'ѡ' | 'ω' => "w",
            'ｚ' | 'ʐ' => "z",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(f);
    }
    out.replace("rn", "m").replace("vv", "w")
}

/// Whether a string mixes Latin letters with Cyrillic or Greek ones (UTS #39's mixed-script
/// check for the scripts lookalike domains use).
pub fn mixed_script(s: &str) -> bool {
    let latin = s.chars().any(|c| c.is_ascii_alphabetic());
    let other = s.chars().any(|c| matches!(c as u32, 0x0370..=0x052f));
    latin && other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures() {
        assert_eq!(edit_distance("paypal", "paypai"), 1);
        assert_eq!(edit_distance("ebay", "ebya"), 1);
        assert_eq!(edit_distance("americeexpre", "americanexpress"), 4);
        let jw = jaro_winkler("americeexpre", "americanexpress");
        assert!(jw > 0.88, "{jw}");
        assert!(jaro_winkler("amazing", "americanexpress") < 0.7);
        assert_eq!(skeleton("раураl"), "paypal");
        assert_eq!(skeleton("rnicrosoft"), skeleton("microsoft"));
        assert_eq!(skeleton("paypa1"), skeleton("paypal"));
        assert!(mixed_script("pаypal"));
        assert!(!mixed_script("paypal"));
    }
}
