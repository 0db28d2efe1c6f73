package uaserver

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// Our Subscription and MonitoredItem service sets. gopcua v0.9.0's own
// implementation is not used, because measured and read in its source:
//   - subscription ids are len(map)+1: after one client deletes a
//     subscription the next one reuses a live id, and deleting either then
//     removes the other client's monitored items;
//   - ChangeNotification sends on a bounded channel while holding the
//     service lock, so one client that stops reading its socket freezes
//     notifications (and CreateMonitoredItems) for every client;
//   - SetMonitoringMode and DeleteMonitoredItems dereference unknown items
//     (panic); CreateMonitoredItems accepts nodes that do not exist.
//
// Here ids come from counters, subscriptions belong to one session and
// only it may touch them, change marking never blocks, and every unknown id
// is answered with its status code. Notifications are latest-value only
// (queue size 1 per item): values are read when a notification is sent.

// Limits per session.
const (
	maxSubsPerSession    = 10
	maxItemsPerSub       = 1000
	maxPublishQueue      = 10
	publishSendTimeout   = 10 * time.Second
	minPublishingMS      = 50
	maxPublishingMS      = 3600_000
	defaultKeepAliveTick = 10
)

type pubReq struct {
	sc    *uasc.SecureChannel
	reqID uint32
	req   *ua.PublishRequest
	acks  []ua.StatusCode
}

type item struct {
	id, handle uint32
	node       *ua.NodeID
	key        string
	attr       ua.AttributeID
	mode       ua.MonitoringMode
	dirty      bool
}

type subscription struct {
	id         uint32
	token      string // owning session
	interval   time.Duration
	lifetime   uint32
	keepAlive  uint32
	publishing bool
	items      map[uint32]*item
	seq        uint32
	idle       uint32 // intervals since the last message sent
	starved    uint32 // intervals without a queued publish request
	stop       chan struct{}
	reset      chan time.Duration
}

type subService struct {
	s *Server

	mu       sync.Mutex
	nextSub  uint32
	nextItem uint32
	subs     map[uint32]*subscription
	byNode   map[string]map[*item]*subscription
	queues   map[string][]*pubReq // session token -> queued publish requests
	closed   bool
}

func newSubService(s *Server) *subService {
	return &subService{s: s, subs: map[uint32]*subscription{}, byNode: map[string]map[*item]*subscription{}, queues: map[string][]*pubReq{}}
}

func respHeader(h *ua.RequestHeader, code ua.StatusCode) *ua.ResponseHeader { return header(h, code) }

// revise clamps subscription parameters to what we serve: publishing
// interval 50 ms .. 1 h (gopcua panicked on <= 0), keep-alive >= 1,
// lifetime >= 3 keep-alives (OPC UA Part 4, 5.13.2).
func revise(interval float64, lifetime, keepAlive uint32) (float64, uint32, uint32) {
	if !(interval >= minPublishingMS) { // also NaN
		interval = minPublishingMS
	}
	if interval > maxPublishingMS {
		interval = maxPublishingMS
	}
	if keepAlive == 0 {
		keepAlive = defaultKeepAliveTick
	}
	if keepAlive > 100_000 {
		keepAlive = 100_000
	}
	if lifetime < 3*keepAlive {
		lifetime = 3 * keepAlive
	}
	return interval, lifetime, keepAlive
}

func (ss *subService) owned(token string, id uint32) (*subscription, ua.StatusCode) {
	sub, ok := ss.subs[id]
	if !ok || sub.token != token {
		// Another session's subscription is as invisible as a missing one.
		return nil, ua.StatusBadSubscriptionIDInvalid
	}
	return sub, ua.StatusOK
}

func (ss *subService) countFor(token string) int {
	n := 0
	for _, sub := range ss.subs {
		if sub.token == token {
			n++
		}
	}
	return n
}

func (ss *subService) createSubscription(st *session, req *ua.CreateSubscriptionRequest) (ua.Response, error) {
	interval, lifetime, keepAlive := revise(req.RequestedPublishingInterval, req.RequestedLifetimeCount, req.RequestedMaxKeepAliveCount)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, ua.StatusBadShutdown
	}
	if ss.countFor(st.token) >= maxSubsPerSession {
		return nil, ua.StatusBadTooManySubscriptions
	}
	ss.nextSub++
	if ss.nextSub == 0 {
		ss.nextSub = 1
	}
	sub := &subscription{id: ss.nextSub, token: st.token, interval: time.Duration(interval * float64(time.Millisecond)),
		lifetime: lifetime, keepAlive: keepAlive, publishing: req.PublishingEnabled, items: map[uint32]*item{},
		stop: make(chan struct{}), reset: make(chan time.Duration, 1)}
	ss.subs[sub.id] = sub
	go ss.run(sub)
	return &ua.CreateSubscriptionResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), SubscriptionID: sub.id,
		RevisedPublishingInterval: interval, RevisedLifetimeCount: lifetime, RevisedMaxKeepAliveCount: keepAlive}, nil
}

func (ss *subService) modifySubscription(st *session, req *ua.ModifySubscriptionRequest) (ua.Response, error) {
	interval, lifetime, keepAlive := revise(req.RequestedPublishingInterval, req.RequestedLifetimeCount, req.RequestedMaxKeepAliveCount)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub, code := ss.owned(st.token, req.SubscriptionID)
	if code != ua.StatusOK {
		return nil, code
	}
	sub.lifetime, sub.keepAlive = lifetime, keepAlive
	sub.interval = time.Duration(interval * float64(time.Millisecond))
	select {
	case sub.reset <- sub.interval:
	default:
	}
	return &ua.ModifySubscriptionResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK),
		RevisedPublishingInterval: interval, RevisedLifetimeCount: lifetime, RevisedMaxKeepAliveCount: keepAlive}, nil
}

func (ss *subService) setPublishingMode(st *session, req *ua.SetPublishingModeRequest) (ua.Response, error) {
	if len(req.SubscriptionIDs) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	results := make([]ua.StatusCode, len(req.SubscriptionIDs))
	for i, id := range req.SubscriptionIDs {
		sub, code := ss.owned(st.token, id)
		if results[i] = code; sub != nil {
			sub.publishing = req.PublishingEnabled
		}
	}
	return &ua.SetPublishingModeResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (ss *subService) deleteSubscriptions(st *session, req *ua.DeleteSubscriptionsRequest) (ua.Response, error) {
	if len(req.SubscriptionIDs) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	ss.mu.Lock()
	results := make([]ua.StatusCode, len(req.SubscriptionIDs))
	for i, id := range req.SubscriptionIDs {
		sub, code := ss.owned(st.token, id)
		if results[i] = code; sub != nil {
			ss.removeLocked(sub)
		}
	}
	pending := ss.orphanedLocked(st.token)
	ss.mu.Unlock()
	ss.answerNoSubscription(pending)
	return &ua.DeleteSubscriptionsResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// transferSubscriptions moves subscriptions to the requesting session when
// both sessions belong to the same user (Part 4, 5.13.7).
func (ss *subService) transferSubscriptions(st *session, owner func(token string) *session, req *ua.TransferSubscriptionsRequest) (ua.Response, error) {
	if len(req.SubscriptionIDs) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	results := make([]*ua.TransferResult, len(req.SubscriptionIDs))
	for i, id := range req.SubscriptionIDs {
		res := &ua.TransferResult{StatusCode: ua.StatusOK, AvailableSequenceNumbers: []uint32{}}
		results[i] = res
		sub, ok := ss.subs[id]
		if !ok {
			res.StatusCode = ua.StatusBadSubscriptionIDInvalid
			continue
		}
		prev := owner(sub.token)
		if sub.token != st.token && (prev != nil && (prev.user != st.user || prev.role != st.role) || st.role == "anonymous") {
			res.StatusCode = ua.StatusBadUserAccessDenied
			continue
		}
		sub.token = st.token
		for _, it := range sub.items {
			it.dirty = it.mode == ua.MonitoringModeReporting // resend current values
		}
	}
	return &ua.TransferSubscriptionsResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (ss *subService) removeLocked(sub *subscription) {
	delete(ss.subs, sub.id)
	for _, it := range sub.items {
		ss.unindexLocked(it)
	}
	close(sub.stop)
}

func (ss *subService) unindexLocked(it *item) {
	if m := ss.byNode[it.key]; m != nil {
		delete(m, it)
		if len(m) == 0 {
			delete(ss.byNode, it.key)
		}
	}
}

// orphanedLocked takes the queued publish requests of a session that has no
// subscription left: they are answered BadNoSubscription.
func (ss *subService) orphanedLocked(token string) []*pubReq {
	if ss.countFor(token) > 0 {
		return nil
	}
	q := ss.queues[token]
	delete(ss.queues, token)
	return q
}

func (ss *subService) answerNoSubscription(q []*pubReq) {
	for _, pr := range q {
		resp := &ua.PublishResponse{ResponseHeader: respHeader(pr.req.RequestHeader, ua.StatusBadNoSubscription),
			AvailableSequenceNumbers: []uint32{}, Results: pr.acks, DiagnosticInfos: []*ua.DiagnosticInfo{},
			NotificationMessage: &ua.NotificationMessage{PublishTime: time.Now(), NotificationData: []*ua.ExtensionObject{}}}
		ss.send(pr, resp)
	}
}

// dropSession removes a closed or expired session's subscriptions (unless
// keep, for CloseSession with DeleteSubscriptions=false: they then live
// until their lifetime ends or another session of the user takes them).
func (ss *subService) dropSession(token string, keep bool) {
	ss.mu.Lock()
	if !keep {
		for _, sub := range ss.subs {
			if sub.token == token {
				ss.removeLocked(sub)
			}
		}
	}
	delete(ss.queues, token) // the session is gone: nobody to answer
	ss.mu.Unlock()
}

func (ss *subService) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for _, sub := range ss.subs {
		ss.removeLocked(sub)
	}
	ss.queues = map[string][]*pubReq{}
}

func supportedFilter(f *ua.ExtensionObject) bool {
	if f == nil || f.Value == nil {
		return true
	}
	dcf, ok := f.Value.(*ua.DataChangeFilter)
	// Status and value changes without deadband: what we report.
	return ok && dcf.DeadbandType == 0
}

func (ss *subService) createMonitoredItems(st *session, req *ua.CreateMonitoredItemsRequest) (ua.Response, error) {
	if len(req.ItemsToCreate) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	if req.TimestampsToReturn > ua.TimestampsToReturnNeither {
		return nil, ua.StatusBadTimestampsToReturnInvalid
	}
	// Check nodes before taking the lock (reads call our value store).
	codes := make([]ua.StatusCode, len(req.ItemsToCreate))
	for i, ir := range req.ItemsToCreate {
		codes[i] = ss.s.checkMonitorable(ir)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub, code := ss.owned(st.token, req.SubscriptionID)
	if code != ua.StatusOK {
		return nil, code
	}
	results := make([]*ua.MonitoredItemCreateResult, len(req.ItemsToCreate))
	interval := float64(sub.interval) / float64(time.Millisecond)
	for i, ir := range req.ItemsToCreate {
		res := &ua.MonitoredItemCreateResult{StatusCode: codes[i], FilterResult: ua.NewExtensionObject(nil)}
		results[i] = res
		if res.StatusCode != ua.StatusOK {
			continue
		}
		if len(sub.items) >= maxItemsPerSub {
			res.StatusCode = ua.StatusBadTooManyMonitoredItems
			continue
		}
		ss.nextItem++
		if ss.nextItem == 0 {
			ss.nextItem = 1
		}
		it := &item{id: ss.nextItem, handle: ir.RequestedParameters.ClientHandle, node: ir.ItemToMonitor.NodeID,
			key: ir.ItemToMonitor.NodeID.String(), attr: ir.ItemToMonitor.AttributeID, mode: ir.MonitoringMode}
		it.dirty = it.mode == ua.MonitoringModeReporting // the first notification carries the current value
		sub.items[it.id] = it
		if ss.byNode[it.key] == nil {
			ss.byNode[it.key] = map[*item]*subscription{}
		}
		ss.byNode[it.key][it] = sub
		res.MonitoredItemID, res.RevisedSamplingInterval, res.RevisedQueueSize = it.id, interval, 1
	}
	return &ua.CreateMonitoredItemsResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (ss *subService) modifyMonitoredItems(st *session, req *ua.ModifyMonitoredItemsRequest) (ua.Response, error) {
	if len(req.ItemsToModify) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	if req.TimestampsToReturn > ua.TimestampsToReturnNeither {
		return nil, ua.StatusBadTimestampsToReturnInvalid
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub, code := ss.owned(st.token, req.SubscriptionID)
	if code != ua.StatusOK {
		return nil, code
	}
	interval := float64(sub.interval) / float64(time.Millisecond)
	results := make([]*ua.MonitoredItemModifyResult, len(req.ItemsToModify))
	for i, m := range req.ItemsToModify {
		res := &ua.MonitoredItemModifyResult{StatusCode: ua.StatusOK, FilterResult: ua.NewExtensionObject(nil)}
		results[i] = res
		if m == nil {
			res.StatusCode = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		it, ok := sub.items[m.MonitoredItemID]
		switch {
		case !ok:
			res.StatusCode = ua.StatusBadMonitoredItemIDInvalid
		case m.RequestedParameters == nil:
			res.StatusCode = ua.StatusBadMonitoredItemFilterInvalid
		case !supportedFilter(m.RequestedParameters.Filter):
			res.StatusCode = ua.StatusBadMonitoredItemFilterUnsupported
		default:
			it.handle = m.RequestedParameters.ClientHandle
			res.RevisedSamplingInterval, res.RevisedQueueSize = interval, 1
		}
	}
	return &ua.ModifyMonitoredItemsResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (ss *subService) setMonitoringMode(st *session, req *ua.SetMonitoringModeRequest) (ua.Response, error) {
	if len(req.MonitoredItemIDs) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	if req.MonitoringMode > ua.MonitoringModeReporting {
		return nil, ua.StatusBadMonitoringModeInvalid
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub, code := ss.owned(st.token, req.SubscriptionID)
	if code != ua.StatusOK {
		return nil, code
	}
	results := make([]ua.StatusCode, len(req.MonitoredItemIDs))
	for i, id := range req.MonitoredItemIDs {
		it, ok := sub.items[id]
		if !ok {
			results[i] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		if req.MonitoringMode == ua.MonitoringModeReporting && it.mode != ua.MonitoringModeReporting {
			it.dirty = true
		}
		it.mode = req.MonitoringMode
	}
	return &ua.SetMonitoringModeResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (ss *subService) deleteMonitoredItems(st *session, req *ua.DeleteMonitoredItemsRequest) (ua.Response, error) {
	if len(req.MonitoredItemIDs) == 0 {
		return nil, ua.StatusBadNothingToDo
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub, code := ss.owned(st.token, req.SubscriptionID)
	if code != ua.StatusOK {
		return nil, code
	}
	results := make([]ua.StatusCode, len(req.MonitoredItemIDs))
	for i, id := range req.MonitoredItemIDs {
		it, ok := sub.items[id]
		if !ok {
			results[i] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		delete(sub.items, id)
		ss.unindexLocked(it)
	}
	return &ua.DeleteMonitoredItemsResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusOK), Results: results, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// publish queues a publish request; a subscription's loop answers it.
// It returns a response only when the request is answered at once.
func (ss *subService) publish(st *session, sc *uasc.SecureChannel, reqID uint32, req *ua.PublishRequest) (ua.Response, error) {
	ss.mu.Lock()
	acks := make([]ua.StatusCode, len(req.SubscriptionAcknowledgements))
	for i, a := range req.SubscriptionAcknowledgements {
		// No retransmission queue: an acknowledgement of a subscription of
		// this session is fine, anything else is unknown.
		if a == nil {
			acks[i] = ua.StatusBadSequenceNumberUnknown
		} else if _, code := ss.owned(st.token, a.SubscriptionID); code != ua.StatusOK {
			acks[i] = code
		}
	}
	if ss.countFor(st.token) == 0 {
		ss.mu.Unlock()
		return &ua.PublishResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusBadNoSubscription), AvailableSequenceNumbers: []uint32{},
			Results: acks, DiagnosticInfos: []*ua.DiagnosticInfo{}, NotificationMessage: &ua.NotificationMessage{PublishTime: time.Now(), NotificationData: []*ua.ExtensionObject{}}}, nil
	}
	if len(ss.queues[st.token]) >= maxPublishQueue {
		ss.mu.Unlock()
		return &ua.PublishResponse{ResponseHeader: respHeader(req.RequestHeader, ua.StatusBadTooManyPublishRequests), AvailableSequenceNumbers: []uint32{},
			Results: acks, DiagnosticInfos: []*ua.DiagnosticInfo{}, NotificationMessage: &ua.NotificationMessage{PublishTime: time.Now(), NotificationData: []*ua.ExtensionObject{}}}, nil
	}
	ss.queues[st.token] = append(ss.queues[st.token], &pubReq{sc: sc, reqID: reqID, req: req, acks: acks})
	ss.mu.Unlock()
	return nil, nil
}

// changed marks the monitored items of a node dirty (never blocks).
func (ss *subService) changed(key string) {
	ss.mu.Lock()
	for it := range ss.byNode[key] {
		if it.mode == ua.MonitoringModeReporting {
			it.dirty = true
		}
	}
	ss.mu.Unlock()
}

// run is a subscription's publishing loop: once per publishing interval it
// sends the dirty items' current values (or a keep-alive) in answer to a
// queued publish request, and ends the subscription when no publish
// request came for lifetime intervals.
func (ss *subService) run(sub *subscription) {
	ss.mu.Lock()
	interval := sub.interval
	ss.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-sub.stop:
			return
		case d := <-sub.reset:
			t.Reset(d)
			continue
		case <-t.C:
		}
		if !ss.tick(sub) {
			return
		}
	}
}

func (ss *subService) tick(sub *subscription) bool {
	ss.mu.Lock()
	select {
	case <-sub.stop:
		ss.mu.Unlock()
		return false
	default:
	}
	q := ss.queues[sub.token]
	if len(q) == 0 {
		sub.starved++
		if sub.starved > sub.lifetime {
			ss.removeLocked(sub)
			ss.mu.Unlock()
			ss.s.log.Info().Uint32("subscription", sub.id).Msg("OPC UA subscription expired: no publish requests")
			return false
		}
	} else {
		sub.starved = 0
	}
	var dirty []*item
	if sub.publishing {
		for _, it := range sub.items {
			if it.dirty && it.mode == ua.MonitoringModeReporting {
				dirty = append(dirty, it)
			}
		}
	}
	sub.idle++
	if len(q) == 0 || (len(dirty) == 0 && sub.idle < sub.keepAlive) {
		ss.mu.Unlock()
		return true
	}
	pr := q[0]
	ss.queues[sub.token] = q[1:]
	for _, it := range dirty {
		it.dirty = false
	}
	sub.idle = 0
	type note struct {
		handle uint32
		node   *ua.NodeID
		attr   ua.AttributeID
	}
	notes := make([]note, len(dirty))
	for i, it := range dirty {
		notes[i] = note{it.handle, it.node, it.attr}
	}
	msg := &ua.NotificationMessage{PublishTime: time.Now(), NotificationData: []*ua.ExtensionObject{}}
	if len(dirty) > 0 {
		sub.seq++
		if sub.seq == 0 {
			sub.seq = 1
		}
		msg.SequenceNumber = sub.seq
	} else {
		msg.SequenceNumber = sub.seq + 1 // keep-alive: the next sequence number (Part 4, 5.13.1.1)
	}
	id := sub.id
	ss.mu.Unlock()

	if len(notes) > 0 {
		sort.Slice(notes, func(i, j int) bool { return notes[i].handle < notes[j].handle })
		dcn := &ua.DataChangeNotification{MonitoredItems: make([]*ua.MonitoredItemNotification, len(notes)), DiagnosticInfos: []*ua.DiagnosticInfo{}}
		for i, n := range notes {
			dcn.MonitoredItems[i] = &ua.MonitoredItemNotification{ClientHandle: n.handle, Value: ss.s.attribute(n.node, n.attr)}
		}
		eo := ua.NewExtensionObject(dcn)
		eo.UpdateMask()
		msg.NotificationData = []*ua.ExtensionObject{eo}
	}
	resp := &ua.PublishResponse{ResponseHeader: respHeader(pr.req.RequestHeader, ua.StatusOK), SubscriptionID: id,
		AvailableSequenceNumbers: []uint32{}, NotificationMessage: msg, Results: pr.acks, DiagnosticInfos: []*ua.DiagnosticInfo{}}
	if !ss.send(pr, resp) && len(dirty) > 0 {
		// Not delivered: mark the items again for the next request.
		ss.mu.Lock()
		for _, it := range dirty {
			if _, live := sub.items[it.id]; live {
				it.dirty = true
			}
		}
		ss.mu.Unlock()
	}
	return true
}

func (ss *subService) send(pr *pubReq, resp *ua.PublishResponse) bool {
	ctx, cancel := context.WithTimeout(context.Background(), publishSendTimeout)
	defer cancel()
	var err error
	func() {
		defer ss.s.recovered("Publish response")
		err = pr.sc.SendResponseWithContext(ctx, pr.reqID, resp)
	}()
	if err != nil {
		ss.s.log.Debug().Err(err).Msg("OPC UA publish response not sent")
		return false
	}
	return true
}

// waiting reports whether a session has publish requests queued.
func (ss *subService) waiting(token string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.queues[token]) > 0
}

// counts for tests: subscriptions and monitored items.
func (ss *subService) counts() (subs, items int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, sub := range ss.subs {
		items += len(sub.items)
	}
	return len(ss.subs), items
}
