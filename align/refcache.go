package align

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrRefCacheStale means a reference cache exists but was computed for other inputs (model, data,
// template, truncation...) or another number of pairs: recompute it.
var ErrRefCacheStale = errors.New("reference cache is stale")

// RefCacheKey returns a hex SHA-256 of the parts (length-prefixed, so parts cannot run together):
// pass everything the reference log-probs depend on, e.g. the model fingerprint, the data hash,
// the chat template and the truncation settings.
func RefCacheKey(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FileFingerprint returns a fast identity of a (possibly multi-GB) file: SHA-256 over its size,
// first MiB and last MiB. Use it for model files; hash small data files fully with FileHash.
func FileFingerprint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "size=%d;", fi.Size())
	const chunk = 1 << 20
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, chunk)); err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", path, err)
	}
	if fi.Size() > chunk {
		if _, err := io.Copy(h, io.NewSectionReader(f, max(chunk, fi.Size()-chunk), chunk)); err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileHash returns the hex SHA-256 of a whole file.
func FileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Reference cache layout (little endian): magic "BPOREFS1" | key (u32 length + bytes) | n u64 |
// n x (chosen f64, rejected f64) | payload length u64 | crc32c u32.
const refCacheMagic = "BPOREFS1"

// SaveRefCache writes reference log-probs under a key, atomically.
func SaveRefCache(path, key string, refs []RefLogps) error {
	return writeSummed(path, func(sw *stateWriter) {
		sw.bytes([]byte(refCacheMagic))
		sw.str(key)
		sw.u64(uint64(len(refs)))
		for _, r := range refs {
			sw.f64(r.Chosen)
			sw.f64(r.Rejected)
		}
	})
}

// LoadRefCache reads a cache written by SaveRefCache. It returns an error wrapping
// ErrRefCacheStale when the key or the pair count differ, os.ErrNotExist when there is no cache,
// and a plain error when the file is damaged.
func LoadRefCache(path, key string, n int) ([]RefLogps, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reference cache: %w", err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("reference cache %s: %s", path, fmt.Sprintf(format, args...))
	}
	if len(data) < len(refCacheMagic)+stateTrailer || string(data[:len(refCacheMagic)]) != refCacheMagic {
		return nil, fail("not a bpo reference cache (bad magic or too short)")
	}
	payload, err := summedPayload(data)
	if err != nil {
		return nil, fail("%v", err)
	}
	r := &stateReader{b: payload, pos: len(refCacheMagic)}
	gotKey := r.str()
	count := r.u64()
	if r.err != nil {
		return nil, fail("%v", r.err)
	}
	if gotKey != key {
		return nil, fmt.Errorf(
			"reference cache %s: computed for other inputs (key %.12s…, want %.12s…): %w",
			path,
			gotKey,
			key,
			ErrRefCacheStale,
		)
	}
	if count != uint64(n) {
		return nil, fmt.Errorf("reference cache %s: holds %d pairs, want %d: %w", path, count, n, ErrRefCacheStale)
	}
	if uint64(r.remaining()) != 16*count {
		return nil, fail("%d bytes of values for %d pairs", r.remaining(), count)
	}
	refs := make([]RefLogps, n)
	for i := range refs {
		refs[i] = RefLogps{Chosen: r.f64(), Rejected: r.f64()}
		if !isFinite(refs[i].Chosen) || !isFinite(refs[i].Rejected) {
			return nil, fail("pair %d has non-finite log-probs", i)
		}
	}
	return refs, nil
}
