//! Keys as USB HID usages (page 7, "Keyboard/Keypad"): the one key code on the wire. Each end
//! maps to and from its platform's codes through Chromium's keycode table (the `keycode` crate),
//! so physical keys travel, not characters: the host's keyboard layout decides what they type,
//! as with a USB keyboard plugged into it.

use keycode::KeyMap;

/// HID usage page of keyboard keys.
const KEYBOARD_PAGE: u16 = 7;

/// Modifier keys held, as in the first byte of a HID boot keyboard report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Modifiers(u8);

impl Modifiers {
    pub const NONE: Modifiers = Modifiers(0);
    pub const LEFT_CTRL: Modifiers = Modifiers(1 << 0);
    pub const LEFT_SHIFT: Modifiers = Modifiers(1 << 1);
    pub const LEFT_ALT: Modifiers = Modifiers(1 << 2);
    pub const LEFT_GUI: Modifiers = Modifiers(1 << 3);
    pub const RIGHT_CTRL: Modifiers = Modifiers(1 << 4);
    pub const RIGHT_SHIFT: Modifiers = Modifiers(1 << 5);
    pub const RIGHT_ALT: Modifiers = Modifiers(1 << 6);
    pub const RIGHT_GUI: Modifiers = Modifiers(1 << 7);

    pub const fn from_bits(b: u8) -> Self {
        Modifiers(b)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: Modifiers) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Modifiers) -> Modifiers {
        Modifiers(self.0 | other.0)
    }

    pub const fn difference(self, other: Modifiers) -> Modifiers {
        Modifiers(self.0 & !other.0)
    }

    /// The modifier a key is, if it is one (usages 0xE0–0xE7, in bit order).
    pub fn of_usage(usage: u16) -> Option<Modifiers> {
        (0xE0..=0xE7)
            .contains(&usage)
            .then(|| Modifiers(1 << (usage - 0xE0)))
    }

    /// The usages of the modifiers set, in bit order.
    pub fn usages(self) -> impl Iterator<Item = u16> {
        (0..8u16)
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(|i| 0xE0 + i)
    }
}

/// The X11 keycode of a key on a server with evdev keycodes (Xorg and Xvfb with the usual
/// `evdev` XKB rules: keycode = Linux evdev code + 8).
pub fn usage_to_x11(usage: u16) -> Option<u8> {
    let k = KeyMap::from_usb_code(KEYBOARD_PAGE, usage).ok()?;
    u8::try_from(k.xkb).ok().filter(|&c| c >= 8)
}

/// The Linux evdev key code (KEY_*) of a key, for uinput.
pub fn usage_to_evdev(usage: u16) -> Option<u16> {
    let k = KeyMap::from_usb_code(KEYBOARD_PAGE, usage).ok()?;
    (k.evdev != 0).then_some(k.evdev)
}

/// The usage of an X11 keycode (evdev keycodes), for tests and for a Linux client reading X.
pub fn x11_to_usage(keycode: u8) -> Option<u16> {
    let k = KeyMap::from_key_mapping(keycode::KeyMapping::Xkb(keycode as u16)).ok()?;
    (k.usb != 0).then_some(k.usb)
}

/// The usage of an SDL scancode. SDL's scancodes 4..=231 are the HID keyboard usages
/// themselves (SDL_scancode.h is built on the USB HID usage table); SDL's own codes above
/// 231 (media keys and the like) have no keyboard-page usage and are not sent.
pub fn sdl_scancode_to_usage(scancode: u32) -> Option<u16> {
    (4..=231).contains(&scancode).then_some(scancode as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_map_to_evdev_and_x11() {
        // (usage, evdev KEY_*, X11 keycode) for a few keys every layout has.
        for (usage, evdev, x11) in [
            (0x04, 30, 38),   // A
            (0x1E, 2, 10),    // 1
            (0x28, 28, 36),   // Enter
            (0x29, 1, 9),     // Escape
            (0x2C, 57, 65),   // Space
            (0x3A, 59, 67),   // F1
            (0x4F, 106, 114), // Right arrow
            (0xE0, 29, 37),   // Left Ctrl
            (0xE1, 42, 50),   // Left Shift
            (0xE6, 100, 108), // Right Alt
        ] {
            assert_eq!(usage_to_evdev(usage), Some(evdev), "usage {usage:#x}");
            assert_eq!(usage_to_x11(usage), Some(x11), "usage {usage:#x}");
            assert_eq!(x11_to_usage(x11), Some(usage), "keycode {x11}");
        }
        assert_eq!(usage_to_x11(0), None);
        assert_eq!(usage_to_x11(0xFFFF), None);
    }

    #[test]
    fn modifiers_follow_the_boot_report_bits() {
        assert_eq!(Modifiers::of_usage(0xE1), Some(Modifiers::LEFT_SHIFT));
        assert_eq!(Modifiers::of_usage(0xE7), Some(Modifiers::RIGHT_GUI));
        assert_eq!(Modifiers::of_usage(0x04), None);
        let m = Modifiers::LEFT_CTRL.union(Modifiers::RIGHT_ALT);
        assert_eq!(m.usages().collect::<Vec<_>>(), vec![0xE0, 0xE6]);
        assert!(m.contains(Modifiers::LEFT_CTRL));
        assert_eq!(m.difference(Modifiers::LEFT_CTRL), Modifiers::RIGHT_ALT);
    }

    #[test]
    fn sdl_scancodes_are_hid_usages() {
        assert_eq!(sdl_scancode_to_usage(4), Some(0x04)); // SDL_SCANCODE_A
        assert_eq!(sdl_scancode_to_usage(225), Some(0xE1)); // SDL_SCANCODE_LSHIFT
        assert_eq!(sdl_scancode_to_usage(0), None);
        assert_eq!(sdl_scancode_to_usage(258), None); // SDL_SCANCODE_AUDIONEXT
    }
}
