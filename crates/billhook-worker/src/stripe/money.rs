//! Amounts as Stripe counts them: integers in the currency's smallest unit.

/// How many decimals a currency's amounts have: 0 for Stripe's zero-decimal currencies
/// (an amount of 500 JPY is ¥500), 3 for the three-decimal ones, 2 for every other.
pub fn decimals(currency: &str) -> u32 {
    match currency.to_ascii_lowercase().as_str() {
        "bif" | "clp" | "djf" | "gnf" | "jpy" | "kmf" | "krw" | "mga" | "pyg" | "rwf" | "ugx"
        | "vnd" | "vuv" | "xaf" | "xof" | "xpf" => 0,
        "bhd" | "jod" | "kwd" | "omr" | "tnd" => 3,
        _ => 2,
    }
}
