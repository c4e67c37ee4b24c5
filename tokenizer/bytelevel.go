package tokenizer

import "unicode/utf8"

// byteLevelTable is GPT-2's reversible mapping between bytes and printable
// code points: every byte becomes a visible character so that byte-level BPE
// can work on strings without whitespace or control characters.
type byteLevelTable struct {
	toRune [256]rune
	toByte map[rune]byte
}

func newByteLevelTable() *byteLevelTable {
	t := &byteLevelTable{toByte: make(map[rune]byte, 256)}
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		r := rune(b)
		if !printable {
			r = rune(256 + n)
			n++
		}
		t.toRune[b] = r
		t.toByte[r] = byte(b)
	}
	return t
}

// encode maps every byte of s to its printable code point.
func (t *byteLevelTable) encode(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, t.toRune[s[i]])
	}
	return string(buf)
}

// decodeToken maps a token's code points back to bytes, appending them to
// dst. A token holding a code point outside the table (an added token such
// as a run of spaces) is appended unchanged, as the Hugging Face decoder does.
func (t *byteLevelTable) decodeToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := t.toByte[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}
