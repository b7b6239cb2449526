//! Who pays: the price table (USD per GPU-hour by model name) and the namespace-to-team map.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Attribution {
    pub prices: HashMap<String, f64>,
    pub default_price: f64,
    pub teams: HashMap<String, String>,
}

impl Default for Attribution {
    fn default() -> Self {
        Attribution {
            prices: HashMap::new(),
            default_price: 2.0,
            teams: HashMap::new(),
        }
    }
}

impl Attribution {
    /// USD per GPU-hour for a model; the default for models the table does not list.
    pub fn price_of(&self, model_name: &str) -> f64 {
        self.prices
            .get(model_name)
            .copied()
            .unwrap_or(self.default_price)
    }

    /// The team a namespace belongs to; the namespace itself when the map does not list it.
    pub fn team_of<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.teams.get(namespace).map_or(namespace, |t| t.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_fall_back_to_defaults() {
        let mut a = Attribution::default();
        a.prices.insert("H100".into(), 4.5);
        a.teams.insert("team-search".into(), "search".into());
        assert_eq!(a.price_of("H100"), 4.5);
        assert_eq!(a.price_of("L4"), 2.0);
        assert_eq!(a.team_of("team-search"), "search");
        assert_eq!(a.team_of("research"), "research");
    }
}
