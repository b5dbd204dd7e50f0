//! redb 4 panics on some damaged pages instead of returning an error (an `unwrap` on a
//! stored key that is no longer UTF-8, an index out of a page's bounds): reads of the
//! store run inside [`guard`], which turns such a panic into a "damaged" error naming the
//! store. The default panic message is not printed for a caught panic, so a command on a
//! damaged store says one clear thing; panics anywhere else print as always.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many guarded calls this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Installs, once, a panic hook that stays quiet inside [`guard`] and defers to the hook
/// that was there before everywhere else.
fn quiet_inside_guard() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `damaged(message)`.
pub(crate) fn guard<T, E>(
    f: impl FnOnce() -> Result<T, E>,
    damaged: impl FnOnce(String) -> E,
) -> Result<T, E> {
    quiet_inside_guard();
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(damaged(format!(
            "the store's storage engine failed on damaged data ({message})"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::guard;

    #[test]
    fn a_panic_becomes_the_error() {
        let r: Result<(), String> = guard(|| panic!("bad page {}", 7), |m| m);
        assert!(r.unwrap_err().contains("bad page 7"));
        let r: Result<u8, String> = guard(|| Ok(3), |m| m);
        assert_eq!(r, Ok(3));
    }
}
