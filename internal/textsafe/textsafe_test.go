package textsafe

import "testing"

func TestClean(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain", "roles must alternate user/assistant", "roles must alternate user/assistant"},
		{"unicode kept", "größe 模板 ✓", "größe 模板 ✓"},
		{"clear screen", "\x1b[2J\x1b[Hdone", "done"},
		{"colour", "\x1b[1;32mOK\x1b[0m", "OK"},
		{"title OSC with BEL", "\x1b]0;pwned\x07text", "text"},
		{"OSC with ST", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"reset", "\x1bcafter", "after"},
		{"fake line", "bad\nrelupo: training finished", "bad relupo: training finished"},
		{"carriage return overwrite", "error\rsaved", "error saved"},
		{"C1 CSI", "a\u009b2Jb", "ab"},
		{"bell and backspace", "a\a\bb", "ab"},
		{"bidi override", "abc\u202edcba", "abcdcba"},
		{"invalid utf-8", "a\xffb", "ab"},
		{"trailing escape", "x\x1b", "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Clean(c.in); got != c.want {
				t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestLimit(t *testing.T) {
	if got := Limit("\x1b[2Jabcdef", 3); got != "abc…" {
		t.Errorf("got %q", got)
	}
	if got := Limit("ééé", 3); got != "é…" {
		t.Errorf("got %q", got)
	}
	if got := Limit("ab", 3); got != "ab" {
		t.Errorf("got %q", got)
	}
}

func TestCleanLines(t *testing.T) {
	if got := CleanLines("a\x1b[2J\nb\rc"); got != "a\nb c" {
		t.Errorf("got %q", got)
	}
}
