package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxIndexSize bounds model.safetensors.index.json; real indexes are a few
// hundred kilobytes.
const maxIndexSize = 64 << 20

// Checkpoint is a model's weights: a single model.safetensors file, or a
// set of shards listed by model.safetensors.index.json. Its methods may be
// called from several goroutines at once.
type Checkpoint struct {
	dir   string
	files []*File // the single file, or the shards sorted by file name
	where map[string]*File
	names []string
}

// OpenCheckpoint opens the checkpoint in dir. Like the Hugging Face loaders
// it uses model.safetensors when present and model.safetensors.index.json
// otherwise; a folder with neither is an error. A sharded checkpoint's index
// is validated against its shards: shard names must be plain file names in
// dir, every shard must exist and hold the tensors the index assigns to it,
// and no tensor may be held by two shards or by a shard the index does not
// assign it to.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		c := &Checkpoint{dir: dir, files: []*File{f}, where: make(map[string]*File), names: f.Names()}
		for _, n := range c.names {
			c.where[n] = f
		}
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	indexPath := filepath.Join(dir, IndexFileName)
	if _, err := os.Stat(indexPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s: no weights: want %s or %s", dir, SingleFileName, IndexFileName)
	} else if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	weightMap, err := readIndex(indexPath)
	if err != nil {
		return nil, err
	}
	return openShards(dir, indexPath, weightMap)
}

// readIndex reads an index file and returns its weight map, rejecting a
// tensor listed twice.
func readIndex(path string) (map[string]string, error) {
	fail := func(format string, args ...any) (map[string]string, error) {
		return nil, fmt.Errorf("safetensors: %s: %s", path, fmt.Sprintf(format, args...))
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if len(data) > maxIndexSize {
		return fail("index is larger than %d bytes", maxIndexSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fail("index is not a JSON object")
	}
	var weightMap map[string]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("index is not valid JSON: %v", jsonErr(err))
		}
		if tok != "weight_map" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail("index is not valid JSON: %v", jsonErr(err))
			}
			continue
		}
		if weightMap != nil {
			return fail("index has \"weight_map\" twice")
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return fail("\"weight_map\" is not a JSON object")
		}
		weightMap = make(map[string]string)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return fail("index is not valid JSON: %v", jsonErr(err))
			}
			name, _ := tok.(string)
			var shard string
			if err := dec.Decode(&shard); err != nil {
				return fail("weight_map: tensor %q: shard is not a file name string: %v", name, err)
			}
			if _, dup := weightMap[name]; dup {
				return fail("weight_map lists tensor %q twice", name)
			}
			weightMap[name] = shard
		}
		if _, err := dec.Token(); err != nil {
			return fail("index is not valid JSON: %v", jsonErr(err))
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail("index is not valid JSON: %v", jsonErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("index has data after its JSON object")
	}
	if len(weightMap) == 0 {
		return fail("index has no \"weight_map\" or it lists no tensors")
	}
	return weightMap, nil
}

// openShards opens the shards a weight map names and checks them against it.
func openShards(dir, indexPath string, weightMap map[string]string) (_ *Checkpoint, err error) {
	fail := func(format string, args ...any) (*Checkpoint, error) {
		return nil, fmt.Errorf("safetensors: %s: %s", indexPath, fmt.Sprintf(format, args...))
	}
	byShard := make(map[string][]string)
	for name, shard := range weightMap {
		if shard == "" || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) || filepath.IsAbs(shard) || filepath.VolumeName(shard) != "" {
			return fail("tensor %q: shard %q is not a plain file name in the checkpoint folder", name, shard)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	shardNames := make([]string, 0, len(byShard))
	for s := range byShard {
		shardNames = append(shardNames, s)
	}
	slices.Sort(shardNames)

	c := &Checkpoint{dir: dir, where: make(map[string]*File, len(weightMap))}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	files := make(map[string]*File, len(shardNames))
	for _, s := range shardNames {
		f, err := Open(filepath.Join(dir, s))
		if err != nil {
			return nil, fmt.Errorf("%w (a shard listed in %s)", err, indexPath)
		}
		c.files = append(c.files, f)
		files[s] = f
	}
	for _, s := range shardNames {
		names := byShard[s]
		slices.Sort(names)
		for _, name := range names {
			if _, ok := files[s].infos[name]; !ok {
				return fail("tensor %q: shard %s does not hold it", name, s)
			}
			c.where[name] = files[s]
		}
	}
	for _, s := range shardNames {
		for _, name := range files[s].names {
			switch other, listed := weightMap[name]; {
			case !listed:
				return fail("tensor %q: shard %s holds it but the weight_map does not list it", name, s)
			case other != s:
				return fail("tensor %q: appears in two shards, %s and %s", name, s, other)
			}
		}
	}
	c.names = make([]string, 0, len(weightMap))
	for name := range weightMap {
		c.names = append(c.names, name)
	}
	slices.Sort(c.names)
	return c, nil
}

// Close closes every file of the checkpoint.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Dir returns the folder the checkpoint was opened from.
func (c *Checkpoint) Dir() string { return c.dir }

// Files returns the paths of the checkpoint's safetensors files: the single
// file, or the shards sorted by name.
func (c *Checkpoint) Files() []string {
	paths := make([]string, len(c.files))
	for i, f := range c.files {
		paths[i] = f.path
	}
	return paths
}

// Names returns the names of the checkpoint's tensors, sorted.
func (c *Checkpoint) Names() []string { return slices.Clone(c.names) }

// Info returns the description of the named tensor and whether it exists.
// Its Begin and End are offsets in the file that holds it.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	f, ok := c.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Metadata returns a copy of the "__metadata__" of the single file, or of
// the first shard.
func (c *Checkpoint) Metadata() map[string]string {
	if len(c.files) == 0 {
		return map[string]string{}
	}
	return c.files[0].Metadata()
}

func (c *Checkpoint) file(name string) (*File, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", c.dir, name)
	}
	return f, nil
}

// Float32 returns the named tensor converted to float32, as [File.Float32].
func (c *Checkpoint) Float32(name string) ([]float32, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Float32(name)
}

// Raw returns a copy of the named tensor's bytes, as [File.Raw].
func (c *Checkpoint) Raw(name string) ([]byte, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Raw(name)
}

// Int64s returns the named tensor as int64s, as [File.Int64s].
func (c *Checkpoint) Int64s(name string) ([]int64, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Int64s(name)
}

// DType returns the checkpoint's dominant floating-point dtype: of F32, F16,
// BF16 and F64, the one with the most elements (ties go to the earlier in
// that order). A saver uses it to keep the input's dtype. It is F32 when the
// checkpoint has no floating-point tensors.
func (c *Checkpoint) DType() DType {
	order := []DType{F32, F16, BF16, F64}
	count := make(map[DType]int64)
	for name, f := range c.where {
		ti := f.infos[name]
		if ti.DType.IsFloat() {
			count[ti.DType] += int64(ti.NumElements())
		}
	}
	best := F32
	for _, d := range order {
		if count[d] > count[best] {
			best = d
		}
	}
	return best
}
