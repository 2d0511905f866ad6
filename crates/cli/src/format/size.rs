//! Byte counts as Docker prints them (go-units' `HumanSizeWithPrecision` and `BytesSize`).

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Formats `bytes` with decimal units and 3 significant digits, as `docker images` does: "2.12MB", "0B".
pub fn human_size(bytes: f64) -> String {
    scaled(bytes, 1000.0, &DECIMAL_UNITS, 3)
}

/// Formats `bytes` with decimal units and 4 significant digits (Docker's `HumanSize`): "2.118MB".
pub fn human_size_4(bytes: f64) -> String {
    scaled(bytes, 1000.0, &DECIMAL_UNITS, 4)
}

/// Formats `bytes` with binary units and 4 significant digits, as `docker info` does: "23.54GiB".
pub fn bytes_size(bytes: f64) -> String {
    scaled(bytes, 1024.0, &BINARY_UNITS, 4)
}

fn scaled(mut value: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut unit = 0;
    while value >= base && unit < units.len() - 1 {
        value /= base;
        unit += 1;
    }
    format!("{}{}", format_g(value, precision), units[unit])
}

/// Go's `%.{precision}g`: shortest of fixed or exponent notation, trailing zeros removed.
pub fn format_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let precision = precision.max(1);
    // Rounding to `precision` significant digits decides the exponent (999.5 -> 1.00e3).
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{}{:02}",
            strip_zeros(&mantissa),
            sign,
            exponent.unsigned_abs()
        )
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        strip_zeros(&format!("{value:.decimals$}"))
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_size_uses_three_significant_digits_and_decimal_units() {
        assert_eq!(human_size(2_117_606.0), "2.12MB");
        assert_eq!(human_size(1_985_695.0), "1.99MB");
        assert_eq!(human_size(1_990.0), "1.99kB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(310.0), "310B");
        assert_eq!(human_size(1000.0), "1kB");
    }

    #[test]
    fn human_size_switches_to_exponent_like_go_when_rounding_overflows() {
        assert_eq!(human_size(999_999.0), "1e+03kB");
    }

    #[test]
    fn bytes_size_uses_binary_units_with_four_digits() {
        assert_eq!(bytes_size(25_277_636_608.0), "23.54GiB");
        assert_eq!(bytes_size(512.0), "512B");
    }

    #[test]
    fn human_size_4_keeps_four_digits() {
        assert_eq!(human_size_4(2_117_606.0), "2.118MB");
    }
}
