package store

// Buckets are declared here, in one place, with the schema version. No other
// package imports bbolt.
const SchemaVersion = 1

var (
	bucketMeta = []byte("meta") // schema, edge id, epoch, chain head, acked seq
	bucketLog  = []byte("log")  // seq (8 bytes BE) -> stored record (outbox and replay source)

	// Buckets the line engine uses through Tx, by name.
	buckets = map[Bucket][]byte{
		Batches:    []byte("batches"),    // batch id -> batch state
		Units:      []byte("units"),      // gtin 0x00 serial -> unit state: every serial ever used per GTIN
		Containers: []byte("containers"), // sscc -> container state
		State:      []byte("state"),      // small named values (active batch, counters, config hash)
		Pool:       []byte("pool"),       // gtin 0x00 random sort key -> serial: available serials, drawn in random order
		PoolIndex:  []byte("pool_index"), // gtin 0x00 serial -> sort key: membership of the pool
		Reserved:   []byte("reserved"),   // batch 0x00 random sort key -> gtin 0x00 serial: serials allocated to a batch
	}
)

// Bucket names a bucket the line engine may use through Tx.
type Bucket int

// The engine's buckets.
const (
	Batches Bucket = iota
	Units
	Containers
	State
	Pool
	PoolIndex
	Reserved
	numBuckets // not a bucket: the count
)

func (b Bucket) name() []byte {
	n, ok := buckets[b]
	if !ok {
		panic("store: unknown bucket")
	}
	return n
}

func allBuckets() [][]byte {
	out := [][]byte{bucketMeta, bucketLog}
	for _, n := range buckets {
		out = append(out, n)
	}
	return out
}

// meta keys
var (
	keySchema  = []byte("schema")
	keyEdge    = []byte("edge")
	keyEpoch   = []byte("epoch")
	keyHeadSeq = []byte("head_seq")
	keyHead    = []byte("head_hash")
	keyAcked   = []byte("acked_seq")
)
