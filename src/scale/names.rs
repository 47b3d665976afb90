//! How tend names the instances it creates: `{prefix}-{base36 millis}{4 random}`, unique among those listed. The
//! name doubles as the provider's client token, so a retried create never makes two.

use std::collections::HashSet;
use std::time::SystemTime;

/// The `{prefix}-` every managed instance's name starts with.
pub fn name_prefix(prefix: &str) -> String {
    format!("{prefix}-")
}

/// A new instance name `{prefix}-{base36 millis}{4 random}` not among `taken`.
pub fn new_name(prefix: &str, now: SystemTime, taken: &HashSet<String>) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let base36 = |mut n: u128, width: usize| {
        let mut s = Vec::new();
        while n > 0 || s.len() < width {
            s.push(DIGITS[(n % 36) as usize]);
            n /= 36;
        }
        s.reverse();
        String::from_utf8(s).unwrap_or_default()
    };
    let time = base36(crate::core::time::millis(now).max(0) as u128, 8);
    loop {
        let name = format!(
            "{prefix}-{time}{}",
            base36(u128::from(fastrand::u32(..36u32.pow(4))), 4)
        );
        if !taken.contains(&name) {
            return name;
        }
    }
}
