package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultMaxRecordBytes is the longest JSON Lines line (or JSON array
// element) accepted when Options.MaxRecordBytes is zero.
const DefaultMaxRecordBytes = 256 << 20

// Options control how a file is read. The zero value detects the format,
// skips records without a usable preference and reports them nowhere.
type Options struct {
	// Format is the record format; "" and FormatAuto detect it from the
	// first record of each file.
	Format Format
	// Strict makes records without a usable preference (see Skippable)
	// errors instead of skipping them.
	Strict bool
	// OnSkip, if not nil, is called with a *RecordError for every skipped
	// record.
	OnSkip func(err error)
	// MaxRecordBytes bounds the length of one JSON Lines line or JSON array
	// element; 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// Reader streams the Pairs of one file. It is not safe for concurrent use.
type Reader struct {
	name   string
	opts   Options
	format Format // FormatAuto until detected on the first record

	closers []io.Closer
	src     recordSource

	records int // records read, skipped ones included
	skipped int
	err     error // sticky error
}

// recordSource yields the raw records of a file: the decoded record and its
// source name, or an error naming the position.
type recordSource interface {
	next() (rec record, source string, err error)
}

// Open opens the file at path for reading Pairs. The file kind (Parquet,
// Arrow IPC, gzip, JSON array or JSON Lines) is recognized from its first
// bytes. A folder is read when it is a datasets save_to_disk folder of one
// Dataset (its state.json's Arrow files, in order, as one data set).
func Open(path string, opts Options) (*Reader, error) {
	if opts.Format == "" {
		opts.Format = FormatAuto
	}
	if _, err := ParseFormat(string(opts.Format)); err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		files, err := savedDatasetFiles(path)
		if err != nil {
			return nil, err
		}
		c := &chainSource{files: files, opts: opts}
		return &Reader{name: path, opts: opts, format: opts.Format, closers: []io.Closer{c}, src: c}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	r := &Reader{name: path, opts: opts, format: opts.Format, closers: []io.Closer{f}}
	var magic [4]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		f.Close()
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	if n == 4 && (string(magic[:]) == "PAR1" || isArrow(magic[:])) {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("data: %w", err)
		}
		if string(magic[:]) == "PAR1" {
			r.src, err = openParquet(f, st.Size(), path)
		} else {
			r.src, err = openArrow(f, st.Size(), path)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return r, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %w", err)
	}
	if err := r.initText(f); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// NewReader reads Pairs from JSON, JSON Lines or gzip-compressed data in rd
// (Parquet and Arrow need Open); name names it in errors and Pair.Source. Close
// releases only what NewReader itself allocated.
func NewReader(rd io.Reader, name string, opts Options) (*Reader, error) {
	if opts.Format == "" {
		opts.Format = FormatAuto
	}
	if _, err := ParseFormat(string(opts.Format)); err != nil {
		return nil, err
	}
	r := &Reader{name: name, opts: opts, format: opts.Format}
	if err := r.initText(rd); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// initText sets up the JSON or JSON Lines source over rd, decompressing
// gzip first.
func (r *Reader) initText(rd io.Reader) error {
	br := bufio.NewReaderSize(rd, 1<<16)
	if b, _ := br.Peek(2); len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("data: %s: %w", r.name, err)
		}
		r.closers = append(r.closers, zr)
		br = bufio.NewReaderSize(zr, 1<<16)
		if b, _ := br.Peek(4); string(b) == "PAR1" || isArrow(b) {
			return fmt.Errorf("data: %s: gzip-compressed Parquet or Arrow is not supported; decompress it first", r.name)
		}
	}
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	max := r.opts.MaxRecordBytes
	if max <= 0 {
		max = DefaultMaxRecordBytes
	}
	// Look at the first non-space byte: '[' starts a JSON array.
	for {
		b, err := br.Peek(1)
		if err != nil {
			if err == io.EOF {
				r.src = &jsonlSource{name: r.name, br: br, max: max}
				return nil
			}
			return fmt.Errorf("data: %s: %w", r.name, err)
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			br.Discard(1)
			continue
		case '[':
			r.src = &jsonArraySource{name: r.name, dec: json.NewDecoder(br), max: max}
			return nil
		}
		r.src = &jsonlSource{name: r.name, br: br, max: max}
		return nil
	}
}

// Format returns the format records are read with: the Options' format,
// which is FormatAuto until the first record has been read and the format
// detected.
func (r *Reader) Format() Format { return r.format }

// Records returns how many records have been read, skipped ones included.
func (r *Reader) Records() int { return r.records }

// Skipped returns how many records have been skipped.
func (r *Reader) Skipped() int { return r.skipped }

// Next returns the next Pair, or io.EOF after the last one. A *RecordError
// names the record when one is malformed; after any error other than a
// skipped record's, Next keeps returning that error.
func (r *Reader) Next() (Pair, error) {
	if r.err != nil {
		return Pair{}, r.err
	}
	if r.src == nil {
		r.err = errors.New("data: Next on a closed or unopened Reader")
		return Pair{}, r.err
	}
	for {
		rec, src, err := r.src.next()
		if err != nil {
			r.err = err
			return Pair{}, err
		}
		r.records++
		if r.format == FormatAuto {
			f, err := detectFormat(rec)
			if err != nil {
				r.err = &RecordError{Source: src, Err: err}
				return Pair{}, r.err
			}
			r.format = f
		}
		p, err := normalize(rec, r.format)
		if err != nil {
			rerr := &RecordError{Source: src, Err: fmt.Errorf("%s: %w", r.format, err)}
			if !r.opts.Strict && Skippable(err) {
				r.skipped++
				if r.opts.OnSkip != nil {
					r.opts.OnSkip(rerr)
				}
				continue
			}
			r.err = rerr
			return Pair{}, rerr
		}
		p.Source = src
		return p, nil
	}
}

// Close releases the file. It is safe to call more than once.
func (r *Reader) Close() error {
	var err error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if e := r.closers[i].Close(); e != nil && err == nil {
			err = e
		}
	}
	r.closers = nil
	r.src = nil
	if r.err == nil {
		r.err = errors.New("data: Next on a closed Reader")
	}
	return err
}

// decodeObject decodes one JSON object, checking its UTF-8 first (the JSON
// decoder would silently replace invalid bytes).
func decodeObject(b []byte) (record, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: more data after the object")
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", typeName(v))
	}
	return rec, nil
}

// jsonlSource reads JSON Lines.
type jsonlSource struct {
	name string
	br   *bufio.Reader
	max  int
	line int
	buf  []byte
	done bool
	// decoded is set once a record has been decoded.
	decoded bool
}

func (s *jsonlSource) next() (record, string, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, "", err
		}
		src := fmt.Sprintf("%s:%d", s.name, s.line)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := decodeObject(line)
		if err != nil {
			if !s.decoded && errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w (JSON Lines hold one record per line; a JSON file must hold a top-level array of records)", err)
			}
			return nil, "", &RecordError{Source: src, Err: err}
		}
		s.decoded = true
		return rec, src, nil
	}
}

// readLine returns the next line without its line ending.
func (s *jsonlSource) readLine() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	s.buf = s.buf[:0]
	s.line++
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(s.buf)+len(chunk) > s.max+2 { // +2 for "\r\n"
			s.done = true
			return nil, &RecordError{Source: fmt.Sprintf("%s:%d", s.name, s.line), Err: fmt.Errorf("line longer than %d bytes", s.max)}
		}
		s.buf = append(s.buf, chunk...)
		switch err {
		case nil:
			return trimEOL(s.buf), nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			s.done = true
			if len(s.buf) == 0 {
				return nil, io.EOF
			}
			return trimEOL(s.buf), nil
		default:
			s.done = true
			return nil, fmt.Errorf("data: %s:%d: %w", s.name, s.line, err)
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// jsonArraySource reads the elements of a top-level JSON array one by one.
type jsonArraySource struct {
	name    string
	dec     *json.Decoder
	max     int
	index   int // index of the next element
	started bool
	done    bool
}

func (s *jsonArraySource) next() (record, string, error) {
	if s.done {
		return nil, "", io.EOF
	}
	if !s.started {
		s.started = true
		if _, err := s.dec.Token(); err != nil { // the '['
			s.done = true
			return nil, "", fmt.Errorf("data: %s: invalid JSON: %w", s.name, err)
		}
	}
	src := fmt.Sprintf("%s:record %d", s.name, s.index)
	if !s.dec.More() {
		s.done = true
		if t, err := s.dec.Token(); err != nil || t != json.Delim(']') {
			return nil, "", &RecordError{Source: src, Err: fmt.Errorf("invalid JSON near byte %d: %v", s.dec.InputOffset(), jsonErr(t, err))}
		}
		if t, err := s.dec.Token(); err != io.EOF {
			return nil, "", fmt.Errorf("data: %s: invalid JSON: more data after the top-level array (byte %d: %v)", s.name, s.dec.InputOffset(), jsonErr(t, err))
		}
		return nil, "", io.EOF
	}
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		s.done = true
		return nil, "", &RecordError{Source: src, Err: fmt.Errorf("invalid JSON near byte %d: %w", s.dec.InputOffset(), err)}
	}
	s.index++
	if len(raw) > s.max {
		s.done = true
		return nil, "", &RecordError{Source: src, Err: fmt.Errorf("record longer than %d bytes", s.max)}
	}
	rec, err := decodeObject(raw)
	if err != nil {
		s.done = true
		return nil, "", &RecordError{Source: src, Err: err}
	}
	return rec, src, nil
}

func jsonErr(t json.Token, err error) any {
	if err != nil {
		return err
	}
	return fmt.Sprintf("unexpected %v", t)
}

// folderError says that dir, given as a data file, is a folder, and names
// the data files in it when there are some, as a list --data takes: a
// datasets save_to_disk folder holds data-0000K-of-0000N.arrow files beside
// its JSON metadata, and a saved DatasetDict one such folder per split.
func folderError(dir string) error {
	msg := fmt.Sprintf("data: %s is a folder; give the data files inside it", dir)
	if files := dataFiles(dir); len(files) > 0 {
		return fmt.Errorf("%s: %s", msg, listFiles(files))
	}
	subs, _ := os.ReadDir(dir)
	var splits []string
	for _, e := range subs {
		sub := filepath.Join(dir, e.Name())
		if files := dataFiles(sub); e.IsDir() && len(files) > 0 {
			if _, err := os.Stat(filepath.Join(sub, "state.json")); err == nil {
				splits = append(splits, e.Name()+": "+sub) // a saved Dataset: the folder reads whole
			} else {
				splits = append(splits, e.Name()+": "+listFiles(files))
			}
		}
	}
	if len(splits) > 0 {
		return fmt.Errorf("%s, one split's (%s)", msg, strings.Join(splits, "; "))
	}
	return errors.New(msg)
}

// dataFiles lists the data files directly inside dir, sorted.
func dataFiles(dir string) []string {
	var files []string
	for _, pattern := range []string{"*.arrow", "*.parquet", "*.jsonl", "*.jsonl.gz", "*.json.gz"} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		files = append(files, m...)
	}
	slices.Sort(files)
	return files
}

// listFiles joins files as --data takes them, the first eight of many.
func listFiles(files []string) string {
	if len(files) > 8 {
		return strings.Join(files[:8], ",") + fmt.Sprintf(",… (%d files)", len(files))
	}
	return strings.Join(files, ",")
}
