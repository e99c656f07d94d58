/* The VHDX log ([MS-VHDX] 2.3). A current header with a non-zero LogGuid
 * says the file was not closed cleanly: its log may hold updates not yet in
 * place. They are replayed here in memory, never written to the source:
 * the active sequence (2.3.3) is found, its entries checked (2.3.1: "loge"
 * header, CRC-32C over the entry, LogGuid, descriptors and "data" sectors
 * with the entry's sequence number), and its writes flattened into what
 * the file would hold after replay: disjoint stretches, each the bytes of
 * the last write to it (a data sector of the log, kept in memory) or zeros.
 * The metadata, the BAT and sector bitmaps are read through that overlay
 * (vhdup__vhdx_map.meta_src); payload data under it is handed to the
 * upload by the extent iterator as memory (vhdup__vhdx_log_lookup). */
#include "vhd/vhd_int.h"

#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/le.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 4096u
/* Logs larger than this are not replayed in memory. */
#define MAX_LOG (64u * VHDUP__VHDX_MIB)

/* One write of the active sequence (ops, in replay order), or one stretch
 * of the replayed result (segs, by offset, disjoint). data NULL: zeros. */
typedef struct log_op {
  uint64_t off, len;
  const uint8_t *data;
} log_op;

struct vhdup__vhdx_log {
  const vhdup__src *file; /* the layer's own source */
  uint8_t *log;           /* the whole log region; data sectors rebuilt in place */
  log_op *ops;            /* freed once flattened into segs */
  size_t nops;
  log_op *segs;
  size_t nsegs;
};

typedef struct entry {
  int valid;
  uint32_t len, tail;
  uint64_t seq;
} entry;

static const char *nm(const vhdup__disk *d) {
  return d->src.name != NULL ? d->src.name : "(unnamed)";
}

/* Entry at sector s of the log (2.3.1.1): valid when its signature,
 * length, CRC-32C, LogGuid, descriptors and data sectors all agree. */
static entry check_entry(const uint8_t *log, uint32_t loglen, uint32_t s, const uint8_t *guid) {
  entry e = {0, 0, 0, 0};
  const uint8_t *h = log + (size_t)s * SECTOR;
  uint32_t len = vhdup__le32(h + 8), tail = vhdup__le32(h + 12);
  if (memcmp(h, "loge", 4) != 0 || len < SECTOR || len % SECTOR != 0 ||
      len > loglen - (size_t)s * SECTOR || tail % SECTOR != 0 || tail >= loglen ||
      memcmp(h + 32, guid, 16) != 0 || vhdup__crc32c_skip(h, len, 4) != vhdup__le32(h + 4))
    return e;
  uint64_t seq = vhdup__le64(h + 16);
  uint32_t nd = vhdup__le32(h + 24);
  uint64_t dsec = (64 + 32ull * nd + SECTOR - 1) / SECTOR, data = 0;
  if (dsec * SECTOR > len)
    return e;
  for (uint32_t i = 0; i < nd; i++) {
    const uint8_t *d = h + 64 + 32 * i;
    int is_data = memcmp(d, "desc", 4) == 0;
    if ((!is_data && memcmp(d, "zero", 4) != 0) || vhdup__le64(d + 24) != seq ||
        vhdup__le64(d + 16) % SECTOR != 0 || (!is_data && vhdup__le64(d + 8) % SECTOR != 0))
      return e;
    if (is_data) {
      const uint8_t *ds = h + (dsec + data++) * SECTOR;
      if ((dsec + data) * SECTOR > len || memcmp(ds, "data", 4) != 0 ||
          vhdup__le32(ds + 4) != (uint32_t)(seq >> 32) || vhdup__le32(ds + 4092) != (uint32_t)seq)
        return e;
    }
  }
  e.valid = 1;
  e.len = len;
  e.tail = tail;
  e.seq = seq;
  return e;
}

/* 2.3.3: the active sequence is, of the runs of entries that follow one
 * another with sequence numbers rising by one and whose last entry's Tail
 * lies within the run, the one whose last entry has the highest sequence
 * number. stamp[] (n entries) marks the run being walked, so membership is
 * one lookup and the search stays quadratic at worst. Sets *tail and *head
 * (sectors) and returns 1, or 0 if there is none. */
static int active_sequence(const entry *es, uint32_t *stamp, uint32_t n, uint32_t *tail,
                           uint32_t *head) {
  int found = 0;
  uint64_t best = 0;
  for (uint32_t s = 0; s < n; s++) {
    if (!es[s].valid)
      continue;
    uint32_t cur = s, steps = 0;
    for (;;) {
      stamp[cur] = s + 1;
      uint32_t t = es[cur].tail / SECTOR;
      if (stamp[t] == s + 1 && (!found || es[cur].seq > best)) {
        found = 1;
        best = es[cur].seq;
        *tail = t;
        *head = cur;
      }
      uint32_t next = (cur + es[cur].len / SECTOR) % n;
      if (next == s || !es[next].valid || es[next].seq != es[cur].seq + 1 || ++steps >= n)
        break;
      cur = next;
    }
  }
  return found;
}

/* Appends the writes of the entry at sector s. */
static void collect(struct vhdup__vhdx_log *lg, uint32_t s) {
  const uint8_t *h = lg->log + (size_t)s * SECTOR;
  uint32_t nd = vhdup__le32(h + 24);
  uint64_t dsec = (64 + 32ull * nd + SECTOR - 1) / SECTOR, data = 0;
  for (uint32_t i = 0; i < nd; i++) {
    const uint8_t *d = h + 64 + 32 * i;
    if (memcmp(d, "zero", 4) == 0) {
      lg->ops[lg->nops++] = (log_op){vhdup__le64(d + 16), vhdup__le64(d + 8), NULL};
      continue;
    }
    /* A data sector carries 4084 bytes; the first 8 and last 4 of the
     * 4 KiB written are kept in the descriptor (2.3.1.3). Rebuilt in
     * place: the sector's own signature and sequence fields give way. */
    uint8_t *ds = lg->log + (size_t)s * SECTOR + (dsec + data++) * SECTOR;
    memcpy(ds, d + 8, 8);
    memcpy(ds + 4092, d + 4, 4);
    lg->ops[lg->nops++] = (log_op){vhdup__le64(d + 16), SECTOR, ds};
  }
}

/* The first stretch of lg ending after off (lg->nsegs if none). */
static size_t seg_at(const struct vhdup__vhdx_log *lg, uint64_t off) {
  size_t lo = 0, hi = lg->nsegs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (lg->segs[mid].off + lg->segs[mid].len <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int overlay_read(const vhdup__src *src, uint64_t off, void *buf, size_t len) {
  const struct vhdup__vhdx_log *lg = src->ctx;
  int rc = lg->file->read(lg->file, off, buf, len);
  if (rc < 0)
    return rc;
  for (size_t i = seg_at(lg, off); i < lg->nsegs && lg->segs[i].off < off + len; i++) {
    const log_op *o = &lg->segs[i];
    uint64_t lo = o->off > off ? o->off : off;
    uint64_t hi = o->off + o->len < off + len ? o->off + o->len : off + len;
    if (o->data != NULL)
      memcpy((uint8_t *)buf + (lo - off), o->data + (lo - o->off), (size_t)(hi - lo));
    else
      memset((uint8_t *)buf + (lo - off), 0, (size_t)(hi - lo));
  }
  return 0;
}

int vhdup__vhdx_log_lookup(const struct vhdup__vhdx_log *lg, uint64_t off, uint64_t *limit,
                           const uint8_t **mem) {
  size_t i = seg_at(lg, off);
  *mem = NULL;
  if (i == lg->nsegs || lg->segs[i].off > off) {
    if (i < lg->nsegs && lg->segs[i].off - off < *limit)
      *limit = lg->segs[i].off - off;
    return VHDUP__LOG_FILE;
  }
  const log_op *o = &lg->segs[i];
  if (o->off + o->len - off < *limit)
    *limit = o->off + o->len - off;
  if (o->data == NULL)
    return VHDUP__LOG_ZERO;
  *mem = o->data + (off - o->off);
  return VHDUP__LOG_MEMORY;
}

/* Reads the log region and finds its active sequence; entries[] and the
 * region are lg's. */
static int load(vhdup__disk *d, struct vhdup__vhdx_log *lg, entry **es, uint32_t *tail,
                uint32_t *head, vhdup__err *err) {
  const vhdup__vhdx_header *h = &d->info.vhdx.header;
  uint32_t n = h->log_length / SECTOR;
  char g[39];
  vhdup__vhdx_guid_text(h->log_guid, g);
  if (h->log_length == 0 || h->log_length > MAX_LOG)
    return vhdup__errf(err, h->log_length == 0 ? VHDUP_EFORMAT : VHDUP_ELIMIT,
                       "%s: header %u: LogGuid %s is set but the log length is %" PRIu32
                       " (replayed in memory up to %u bytes)",
                       nm(d), d->info.vhdx.header_index, g, h->log_length, MAX_LOG);
  lg->log = vhdup__malloc(h->log_length);
  *es = vhdup__calloc(n, sizeof(entry));
  uint32_t *stamp = vhdup__calloc(n, sizeof(uint32_t));
  if (lg->log == NULL || *es == NULL || stamp == NULL) {
    vhdup__free(stamp);
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for a %" PRIu32 "-byte log", nm(d),
                       h->log_length);
  }
  int rc = vhdup__disk_read(&d->src, h->log_offset, lg->log, h->log_length, "VHDX log", err);
  for (uint32_t s = 0; rc == 0 && s < n; s++)
    (*es)[s] = check_entry(lg->log, h->log_length, s, h->log_guid);
  int found = rc == 0 && active_sequence(*es, stamp, n, tail, head);
  vhdup__free(stamp);
  if (rc < 0)
    return rc;
  if (!found)
    return vhdup__errf(err, VHDUP_EFORMAT,
                       "%s: log at offset %" PRIu64 ": no valid sequence of entries for LogGuid "
                       "%s (the header says the log must be replayed)",
                       nm(d), h->log_offset, g);
  uint64_t flushed = vhdup__le64(lg->log + (size_t)*head * SECTOR + 48);
  if (flushed > d->src.size)
    return vhdup__errf(err, VHDUP_ETRUNCATED,
                       "%s: log entry at offset %" PRIu64 ": FlushedFileOffset %" PRIu64
                       " (byte 48) is past the end of the file (size %" PRIu64 ")",
                       nm(d), h->log_offset + (uint64_t)*head * SECTOR, flushed, d->src.size);
  return 0;
}

/* An op in the sweep below: where it starts and ends, and its place in
 * replay order (a later write wins). */
typedef struct sweep_op {
  uint64_t off, end;
  size_t idx;
} sweep_op;

static int by_off(const void *a, const void *b) {
  const sweep_op *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* Max-heap of ops by replay order. */
static void heap_push(sweep_op *h, size_t *n, sweep_op v) {
  size_t i = (*n)++;
  while (i > 0 && h[(i - 1) / 2].idx < v.idx) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = v;
}

static void heap_pop(sweep_op *h, size_t *n) {
  sweep_op v = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n)
      break;
    if (c + 1 < *n && h[c + 1].idx > h[c].idx)
      c++;
    if (h[c].idx < v.idx)
      break;
    h[i] = h[c];
    i = c;
  }
  if (*n > 0)
    h[i] = v;
}

/* Appends [pos, next) of op o to segs, joined to the last stretch when
 * both continue one another (offsets, and memory or zeros). */
static void emit(struct vhdup__vhdx_log *lg, const log_op *o, uint64_t pos, uint64_t next) {
  const uint8_t *data = o->data != NULL ? o->data + (pos - o->off) : NULL;
  log_op *last = lg->nsegs > 0 ? &lg->segs[lg->nsegs - 1] : NULL;
  if (last != NULL && last->off + last->len == pos && (last->data == NULL) == (data == NULL) &&
      (data == NULL || last->data + last->len == data)) {
    last->len += next - pos;
    return;
  }
  lg->segs[lg->nsegs++] = (log_op){pos, next - pos, data};
}

/* Flattens lg->ops into lg->segs: a sweep by offset, with the ops that
 * cover the current offset in a heap by replay order, whose top is the
 * one that wins there. O(n log n) in the number of writes; ops that have
 * ended are dropped when they reach the top. */
static int flatten(struct vhdup__vhdx_log *lg) {
  size_t n = lg->nops, i = 0, hn = 0;
  sweep_op *ev = vhdup__calloc(n ? n : 1, sizeof(sweep_op));
  sweep_op *heap = vhdup__calloc(n ? n : 1, sizeof(sweep_op));
  lg->segs = vhdup__calloc(2 * n + 1, sizeof(log_op));
  if (ev == NULL || heap == NULL || lg->segs == NULL) {
    vhdup__free(ev);
    vhdup__free(heap);
    return VHDUP_ENOMEM;
  }
  for (size_t k = 0; k < n; k++) {
    const log_op *o = &lg->ops[k];
    ev[k] = (sweep_op){o->off, o->off + o->len < o->off ? UINT64_MAX : o->off + o->len, k};
  }
  qsort(ev, n, sizeof(*ev), by_off);
  uint64_t pos = 0;
  while (i < n || hn > 0) {
    while (hn > 0 && heap[0].end <= pos)
      heap_pop(heap, &hn);
    if (hn == 0 && i < n && ev[i].off > pos)
      pos = ev[i].off;
    while (i < n && ev[i].off <= pos)
      heap_push(heap, &hn, ev[i++]);
    while (hn > 0 && heap[0].end <= pos)
      heap_pop(heap, &hn);
    if (hn == 0)
      continue;
    uint64_t next = heap[0].end;
    if (i < n && ev[i].off < next)
      next = ev[i].off;
    emit(lg, &lg->ops[heap[0].idx], pos, next);
    pos = next;
  }
  vhdup__free(ev);
  vhdup__free(heap);
  vhdup__free(lg->ops);
  lg->ops = NULL;
  return 0;
}

int vhdup__vhdx_log_replay(vhdup__disk *d, vhdup__err *err) {
  struct vhdup__vhdx_log *lg = vhdup__calloc(1, sizeof(*lg));
  entry *es = NULL;
  uint32_t tail = 0, head = 0;
  if (lg == NULL)
    return vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for the log", nm(d));
  d->x.log = lg;
  lg->file = &d->src;
  int rc = load(d, lg, &es, &tail, &head, err);
  if (rc == 0) {
    uint32_t n = d->info.vhdx.header.log_length / SECTOR;
    size_t nops = 0, count = 0;
    for (uint32_t s = tail;; s = (s + es[s].len / SECTOR) % n) {
      nops += vhdup__le32(lg->log + (size_t)s * SECTOR + 24);
      count++;
      if (s == head)
        break;
    }
    lg->ops = vhdup__calloc(nops ? nops : 1, sizeof(log_op));
    if (lg->ops == NULL)
      rc = vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for %zu log writes", nm(d), nops);
    for (uint32_t s = tail; rc == 0; s = (s + es[s].len / SECTOR) % n) {
      collect(lg, s);
      if (s == head)
        break;
    }
    d->info.vhdx.log_entries_replayed = (uint32_t)count;
    if (rc == 0 && flatten(lg) < 0)
      rc = vhdup__errf(err, VHDUP_ENOMEM, "%s: no memory for %zu log writes", nm(d), nops);
  }
  vhdup__free(es);
  if (rc < 0)
    return rc;
  d->x.meta_src.ctx = lg;
  d->x.meta_src.read = overlay_read;
  vhdup__disk_warn(d,
                   "%s: the file was not closed cleanly; %" PRIu32
                   " log entries were replayed in memory (the file is unchanged)",
                   nm(d), d->info.vhdx.log_entries_replayed);
  return 0;
}

void vhdup__vhdx_log_free(struct vhdup__vhdx_log *lg) {
  if (lg == NULL)
    return;
  vhdup__free(lg->log);
  vhdup__free(lg->ops);
  vhdup__free(lg->segs);
  vhdup__free(lg);
}
