//! The flash check (WCAG 2.3.1, "Three Flashes or Below Threshold"), pure:
//! timed frames as small sRGB grids in, a [`FlashReport`] out. Decoding video
//! and animations into such grids is `flash_decode`'s job.
//!
//! Following WCAG 2.x's definitions:
//!
//! - **General flash**: a pair of opposing changes in relative luminance
//!   (from sRGB, as WCAG defines it) of 0.1 or more where the darker state is
//!   below 0.80.
//! - **Red flash**: a pair of opposing transitions involving a saturated red:
//!   WCAG 2.2's note, with linear R, G, B in 0..1, a state is saturated red
//!   when R/(R+G+B) >= 0.8, and a transition is a change of more than 20 in
//!   max(0, (R-G-B) x 320).
//! - **Area**: a flash counts when the area changing together is at least 25 %
//!   of a 10-degree visual field. The field is WCAG's 341 x 256 px of a
//!   1024 x 768 screen, about a ninth of the frame: we take blocks of a third
//!   of the grid's width by a third of its height, sliding by half a block,
//!   and a block has a transition when at least a quarter of its cells make
//!   that same transition in the same frame.
//!
//! Each grid cell follows its luminance (and red value) with hysteresis: a
//! transition is counted when the value has moved by the threshold from the
//! extreme reached since the cell's last transition, in the other direction;
//! so a flash spread over several frames counts once, and a slow fade counts
//! as one transition, not a flash. A block's transitions alternate (one in the
//! same direction as the block's last is ignored). Flashes in a second are the
//! complete pairs of transitions in a one-second window starting at any
//! transition; more than [`MAX_FLASHES_PER_SECOND`] general or red flashes in
//! any one block refuse the creative.

use std::fmt;

/// WCAG 2.3.1's bound: no more than three flashes in any one-second period.
pub const MAX_FLASHES_PER_SECOND: u32 = 3;

/// A general transition is a change in relative luminance of this much or more…
const LUMINANCE_STEP: f32 = 0.1;
/// …where the darker state is below this.
const DARKER_BELOW: f32 = 0.8;
/// A red transition is a change in max(0, (R-G-B) x 320) of more than this…
const RED_STEP: f32 = 20.0;
/// …between states of which the red one has R/(R+G+B) at least this.
const SATURATED_RED: f32 = 0.8;
/// Share of a block's cells that must make the same transition together.
const AREA_SHARE: f32 = 0.25;

/// Which kind of flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    General,
    Red,
}

impl FlashKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashKind::General => "general",
            FlashKind::Red => "red",
        }
    }
}

/// The most flashes of one kind found in any one second, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peak {
    pub flashes: u32,
    /// Start of that second (the first transition in it), from the first frame.
    pub from_ms: u64,
}

/// What the flash check found in a whole creative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlashReport {
    pub general: Peak,
    pub red: Peak,
    /// Frames analysed.
    pub frames: u64,
}

impl FlashReport {
    /// The worst kind over the bound, if any (general first at equal counts).
    pub fn over_limit(&self) -> Option<(FlashKind, Peak)> {
        let over = |p: Peak| p.flashes > MAX_FLASHES_PER_SECOND;
        match (over(self.general), over(self.red)) {
            (true, true) if self.red.flashes > self.general.flashes => {
                Some((FlashKind::Red, self.red))
            }
            (true, _) => Some((FlashKind::General, self.general)),
            (false, true) => Some((FlashKind::Red, self.red)),
            (false, false) => None,
        }
    }

    /// Whether the creative passes WCAG 2.3.1 as checked here.
    pub fn passes(&self) -> bool {
        self.over_limit().is_none()
    }
}

impl fmt::Display for FlashReport {
    /// "10 general flashes in the second from 0.4 s; at most 3" when over the
    /// bound, else the most of each kind in any second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = |ms: u64| format!("{}.{:02} s", ms / 1000, ms % 1000 / 10);
        match self.over_limit() {
            Some((kind, peak)) => write!(
                f,
                "{} {} flashes in the second from {}; at most {MAX_FLASHES_PER_SECOND}",
                peak.flashes,
                kind.as_str(),
                seconds(peak.from_ms)
            ),
            None => write!(
                f,
                "at most {} general and {} red flashes in any second over {} frames; \
                 at most {MAX_FLASHES_PER_SECOND}",
                self.general.flashes, self.red.flashes, self.frames
            ),
        }
    }
}

/// Hysteresis on one value of one cell: which way it last made a transition
/// and the extremes reached since.
#[derive(Debug, Clone, Copy, Default)]
struct Swing {
    last: Direction,
    low: f32,
    high: f32,
    started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Direction {
    #[default]
    None,
    Up,
    Down,
}

impl Swing {
    /// Feeds the next value; the transition it completes, if any. `counts`
    /// says whether a change from `from` to `to` (either order) is one.
    fn step(&mut self, value: f32, counts: impl Fn(f32, f32) -> bool) -> Direction {
        if !self.started {
            *self = Swing {
                last: Direction::None,
                low: value,
                high: value,
                started: true,
            };
            return Direction::None;
        }
        self.low = self.low.min(value);
        self.high = self.high.max(value);
        let turn = if self.last != Direction::Up && counts(self.low, value) && value > self.low {
            Direction::Up
        } else if self.last != Direction::Down && counts(value, self.high) && value < self.high {
            Direction::Down
        } else {
            return Direction::None;
        };
        self.last = turn;
        self.low = value;
        self.high = value;
        turn
    }
}

/// One block's transitions of one kind.
#[derive(Debug, Default)]
struct Track {
    last: Direction,
    /// Times of the transitions in the last second, oldest first.
    recent: std::collections::VecDeque<u64>,
    peak: Peak,
}

impl Track {
    fn transition(&mut self, direction: Direction, at_ms: u64) {
        if direction == Direction::None || direction == self.last {
            return;
        }
        self.last = direction;
        self.recent.push_back(at_ms);
        // The window starting at the oldest transition kept: [oldest, oldest + 1 s).
        while self
            .recent
            .front()
            .is_some_and(|&first| at_ms >= first + 1000)
        {
            self.recent.pop_front();
        }
        let flashes = u32::try_from(self.recent.len() / 2).unwrap_or(u32::MAX);
        if flashes > self.peak.flashes {
            self.peak = Peak {
                flashes,
                from_ms: self.recent.front().copied().unwrap_or(at_ms),
            };
        }
    }
}

/// A block of cells: a ninth of the frame.
#[derive(Debug)]
struct Block {
    x: usize,
    y: usize,
    general: Track,
    red: Track,
}

/// The analysis, fed one frame at a time (so a long video needs no more
/// memory than one grid): [`FlashScan::push`] each frame in order, then
/// [`FlashScan::finish`].
#[derive(Debug)]
pub struct FlashScan {
    width: usize,
    height: usize,
    block_w: usize,
    block_h: usize,
    luminance: Vec<Swing>,
    red: Vec<Swing>,
    blocks: Vec<Block>,
    frames: u64,
    first_ms: Option<u64>,
    // Per-frame scratch: each cell's transitions.
    up: Vec<Direction>,
    red_up: Vec<Direction>,
    /// [`linear`] of every byte value.
    linear: [f32; 256],
}

impl FlashScan {
    /// A scan over grids of `width` x `height` cells (at least 1 each).
    pub fn new(width: usize, height: usize) -> FlashScan {
        let (width, height) = (width.max(1), height.max(1));
        let block_w = width.div_ceil(3);
        let block_h = height.div_ceil(3);
        let positions = |size: usize, block: usize| {
            let step = (block / 2).max(1);
            let mut at: Vec<usize> = (0..=size - block).step_by(step).collect();
            if at.last() != Some(&(size - block)) {
                at.push(size - block);
            }
            at
        };
        let mut blocks = Vec::new();
        for y in positions(height, block_h) {
            for x in positions(width, block_w) {
                blocks.push(Block {
                    x,
                    y,
                    general: Track::default(),
                    red: Track::default(),
                });
            }
        }
        let cells = width * height;
        FlashScan {
            width,
            height,
            block_w,
            block_h,
            luminance: vec![Swing::default(); cells],
            red: vec![Swing::default(); cells],
            blocks,
            frames: 0,
            first_ms: None,
            up: vec![Direction::None; cells],
            red_up: vec![Direction::None; cells],
            linear: std::array::from_fn(|c| linear(c as u8)),
        }
    }

    /// The grid size frames must have.
    pub fn grid(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Feeds the frame shown from `at_ms`: `rgb` is the grid, row by row, three
    /// sRGB bytes per cell (cells missing from a short slice count as black).
    pub fn push(&mut self, at_ms: u64, rgb: &[u8]) {
        let first = *self.first_ms.get_or_insert(at_ms);
        let at = at_ms.saturating_sub(first);
        self.frames += 1;
        for cell in 0..self.width * self.height {
            let px: [u8; 3] = rgb
                .get(cell * 3..cell * 3 + 3)
                .and_then(|p| p.try_into().ok())
                .unwrap_or([0; 3]);
            let [r, g, b] = px.map(|c| self.linear[usize::from(c)]);
            let l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            self.up[cell] = self.luminance[cell].step(l, |darker, brighter| {
                brighter - darker >= LUMINANCE_STEP && darker < DARKER_BELOW
            });
            let sum = r + g + b;
            let red = if sum > 0.0 && r / sum >= SATURATED_RED {
                ((r - g - b) * 320.0).max(0.0)
            } else {
                0.0
            };
            self.red_up[cell] = self.red[cell].step(red, |low, high| high - low > RED_STEP);
        }
        let needed = (AREA_SHARE * (self.block_w * self.block_h) as f32).ceil() as usize;
        let needed = needed.max(1);
        for block in &mut self.blocks {
            let (mut up, mut down, mut red_up, mut red_down) = (0, 0, 0, 0);
            for y in block.y..block.y + self.block_h {
                for x in block.x..block.x + self.block_w {
                    let cell = y * self.width + x;
                    match self.up[cell] {
                        Direction::Up => up += 1,
                        Direction::Down => down += 1,
                        Direction::None => {}
                    }
                    match self.red_up[cell] {
                        Direction::Up => red_up += 1,
                        Direction::Down => red_down += 1,
                        Direction::None => {}
                    }
                }
            }
            block.general.transition(pick(up, down, needed), at);
            block.red.transition(pick(red_up, red_down, needed), at);
        }
    }

    /// The worst second of each kind over every block.
    pub fn finish(self) -> FlashReport {
        let worst = |of: &dyn Fn(&Block) -> Peak| {
            self.blocks.iter().map(of).fold(Peak::default(), |a, b| {
                if b.flashes > a.flashes {
                    b
                } else {
                    a
                }
            })
        };
        FlashReport {
            general: worst(&|b| b.general.peak),
            red: worst(&|b| b.red.peak),
            frames: self.frames,
        }
    }
}

/// A block's transition from its cells' counts: the direction enough cells
/// took (the more common one if both).
fn pick(up: usize, down: usize, needed: usize) -> Direction {
    if up >= needed && up >= down {
        Direction::Up
    } else if down >= needed {
        Direction::Down
    } else {
        Direction::None
    }
}

/// An sRGB byte as a linear value in 0..1 (WCAG's relative luminance formula,
/// whose 0.03928 threshold differs from IEC's 0.04045 in no 8-bit value).
fn linear(c: u8) -> f32 {
    let c = f32::from(c) / 255.0;
    if c <= 0.03928 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 16;
    const H: usize = 9;

    /// Runs frames given by `colour(frame index, x, y)` at `fps` for `frames`.
    fn scan(fps: u64, frames: u64, colour: impl Fn(u64, usize, usize) -> [u8; 3]) -> FlashReport {
        let mut s = FlashScan::new(W, H);
        for i in 0..frames {
            let mut grid = Vec::with_capacity(W * H * 3);
            for y in 0..H {
                for x in 0..W {
                    grid.extend_from_slice(&colour(i, x, y));
                }
            }
            s.push(i * 1000 / fps, &grid);
        }
        s.finish()
    }

    fn check(report: FlashReport, general: u32, red: u32, passes: bool) {
        assert_eq!(
            (report.general.flashes, report.red.flashes, report.passes()),
            (general, red, passes),
            "{report:?}: {report}"
        );
    }

    const BLACK: [u8; 3] = [0, 0, 0];
    const WHITE: [u8; 3] = [255, 255, 255];
    const RED: [u8; 3] = [255, 0, 0];

    #[test]
    fn full_screen_flashing_at_10_hz_is_refused() {
        // 20 frames a second alternating: 20 transitions, 10 flashes a second.
        let r = scan(20, 60, |i, _, _| if i % 2 == 0 { BLACK } else { WHITE });
        check(r, 10, 0, false);
        assert_eq!(
            r.to_string(),
            "10 general flashes in the second from 0.05 s; at most 3"
        );
    }

    #[test]
    fn flashing_at_2_hz_passes() {
        // Half a second black, half white... at 20 fps: 4 transitions a second.
        let r = scan(
            20,
            100,
            |i, _, _| if (i / 5) % 2 == 0 { BLACK } else { WHITE },
        );
        check(r, 2, 0, true);
    }

    #[test]
    fn three_flashes_a_second_pass_four_do_not() {
        // 6 transitions a second: one every 1/6 s (at 60 fps, every 10 frames).
        let r = scan(
            60,
            300,
            |i, _, _| if (i / 10) % 2 == 0 { BLACK } else { WHITE },
        );
        check(r, 3, 0, true);
        let r = scan(
            64,
            300,
            |i, _, _| if (i / 8) % 2 == 0 { BLACK } else { WHITE },
        );
        check(r, 4, 0, false);
    }

    #[test]
    fn slow_fade_is_one_transition() {
        let r = scan(30, 90, |i, _, _| {
            let v = (i * 255 / 89) as u8;
            [v, v, v]
        });
        check(r, 0, 0, true);
    }

    #[test]
    fn bright_flicker_above_080_is_no_flash() {
        // Between white and light grey (relative luminance 0.86): darker above 0.8.
        let r = scan(20, 60, |i, _, _| if i % 2 == 0 { [240; 3] } else { WHITE });
        check(r, 0, 0, true);
    }

    #[test]
    fn small_flashing_area_passes() {
        // A 2x2-cell patch of a 16x9 grid flashes at 10 Hz: under a quarter of
        // any block (6x3 cells; needs 5).
        let r = scan(20, 60, |i, x, y| {
            if x < 2 && y < 2 && i % 2 == 1 {
                WHITE
            } else {
                BLACK
            }
        });
        check(r, 0, 0, true);
        // A 3x2 patch is a third of a block: refused.
        let r = scan(20, 60, |i, x, y| {
            if x < 3 && y < 2 && i % 2 == 1 {
                WHITE
            } else {
                BLACK
            }
        });
        check(r, 10, 0, false);
    }

    #[test]
    fn red_flashing_is_counted_as_red() {
        // Saturated red against black: red transitions and general ones (red
        // has a relative luminance of 0.2126).
        let r = scan(20, 60, |i, _, _| if i % 2 == 0 { BLACK } else { RED });
        assert_eq!(r.red.flashes, 10);
        assert!(!r.passes());
        // Against dark grey with the same luminance change gone: a red flash
        // alone. Grey 0x7f has luminance 0.212, as red.
        let r = scan(20, 60, |i, _, _| if i % 2 == 0 { [0x7f; 3] } else { RED });
        check(r, 0, 10, false);
        assert_eq!(
            r.to_string(),
            "10 red flashes in the second from 0.05 s; at most 3"
        );
    }

    #[test]
    fn flash_over_several_frames_counts_once() {
        // Black, grey, white, grey, black… over 60 fps: each transition is spread
        // over two frames; a cycle of 4 frames is 15 flashes a second.
        let r = scan(60, 120, |i, _, _| match i % 4 {
            0 => BLACK,
            2 => WHITE,
            _ => [128; 3],
        });
        check(r, 15, 0, false);
    }

    #[test]
    fn relative_luminance_follows_wcag() {
        assert_eq!(linear(0), 0.0);
        assert!((linear(255) - 1.0).abs() < 1e-6);
        assert!((linear(128) - 0.2158).abs() < 1e-3);
        assert!((linear(10) - 10.0 / 255.0 / 12.92).abs() < 1e-6);
    }

    #[test]
    fn the_peak_names_when_the_flashing_second_starts() {
        // Still for 2 s, then 10 Hz flashing.
        let r = scan(
            20,
            100,
            |i, _, _| if i >= 40 && i % 2 == 1 { WHITE } else { BLACK },
        );
        assert_eq!(r.general.from_ms, 2050);
        assert_eq!(
            r.to_string(),
            "10 general flashes in the second from 2.05 s; at most 3"
        );
    }
}
