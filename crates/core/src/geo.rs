//! Geographic coordinates and great-circle distance.

use crate::ParseError;
use serde::{Deserialize, Serialize};

/// A point on the Earth in decimal degrees, checked to be in range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

const EARTH_RADIUS_KM: f64 = 6371.0088;

impl Location {
    pub fn new(lat: f64, lon: f64) -> Result<Location, ParseError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(ParseError::Range("latitude must be -90 to 90"));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(ParseError::Range("longitude must be -180 to 180"));
        }
        Ok(Location { lat, lon })
    }

    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(&self, other: &Location) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_york_to_los_angeles_is_about_3940_km() {
        let ny = Location::new(40.71, -74.01).unwrap();
        let la = Location::new(34.05, -118.24).unwrap();
        let d = ny.distance_km(&la);
        assert!((3930.0..3950.0).contains(&d), "{d}");
        assert_eq!(ny.distance_km(&ny), 0.0);
        assert!(Location::new(91.0, 0.0).is_err());
        assert!(Location::new(0.0, f64::NAN).is_err());
    }
}
