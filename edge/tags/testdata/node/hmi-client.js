// An HMI on node-opcua (a third-party OPC UA stack) against the edge's
// PackML tag server, for edge/tags/line_test.go. For each security mode it:
// tries an anonymous session and a wrong password (both must fail), then as
// the operator reads the tags and writes Command.CntrlCmd (Hold, Unhold, a
// command the line refuses). In the "full" mode it also browses the line's
// tags, reads them all, subscribes to Admin.ProdProcessedCount while the
// line runs, and makes the writes the server must refuse (out of range,
// wrong types, read-only tags, attribute rewrites). It reports what it saw,
// one "@serialine <json>" line per mode; the Go test judges.
//
// Input: the environment variable HMI_CONFIG, JSON
//   {endpoint, namespace, root, user, password, pki, modes: [[policy, mode, "full"|""], ...]}
"use strict";
const path = require("path");
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, ClientSubscription, ClientMonitoredItem,
  TimestampsToReturn, DataType, UserTokenType, BrowseDirection, NodeClass,
} = require("node-opcua-client");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");

const cfg = JSON.parse(process.env.HMI_CONFIG);
const report = (obj) => process.stdout.write("@serialine " + JSON.stringify(obj) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withClient(policy, mode, fn) {
  const clientCertificateManager = new OPCUACertificateManager({ automaticallyAcceptUnknownCertificate: true, rootFolder: path.join(cfg.pki, "client") });
  await clientCertificateManager.initialize();
  const client = OPCUAClient.create({
    applicationName: "serialine-hmi-test", applicationUri: "urn:serialine:test:hmi",
    clientCertificateManager, securityPolicy: SecurityPolicy[policy], securityMode: MessageSecurityMode[mode],
    endpointMustExist: false, connectionStrategy: { maxRetry: 1, initialDelay: 100, maxDelay: 500 }, requestedSessionTimeout: 60000,
  });
  await client.connect(cfg.endpoint);
  try {
    return await fn(client);
  } finally {
    await client.disconnect();
  }
}

async function sessionError(policy, mode, identity) {
  try {
    await withClient(policy, mode, async (client) => {
      const s = await client.createSession(identity);
      await s.close();
    });
    return "";
  } catch (e) {
    return String(e.message || e);
  }
}

async function browseTree(session, start, ns) {
  const vars = [];
  const seen = new Set();
  const walk = async (nodeId, depth) => {
    if (depth > 6 || seen.has(nodeId)) return;
    seen.add(nodeId);
    const res = await session.browse({ nodeId, browseDirection: BrowseDirection.Forward, includeSubtypes: true, nodeClassMask: 0, resultMask: 63 });
    for (const ref of res.references || []) {
      if (!ref.isForward || ref.nodeId.namespace !== ns) continue;
      const id = ref.nodeId.toString();
      if (ref.nodeClass === NodeClass.Variable) vars.push(String(ref.nodeId.value));
      else await walk(id, depth + 1);
    }
  };
  await walk(start, 0);
  return vars.sort();
}

async function operator(policy, mode, full) {
  return withClient(policy, mode, async (client) => {
    const session = await client.createSession({ type: UserTokenType.UserName, userName: cfg.user, password: cfg.password });
    const out = {};
    try {
      const nsArray = await session.readNamespaceArray();
      const ns = nsArray.indexOf(cfg.namespace);
      out.namespace_index = ns;
      const id = (p) => `ns=${ns};s=${cfg.root}.${p}`;
      out.browsed = full ? await browseTree(session, "i=85", ns) : [];

      const tags = full ? out.browsed.map((s) => s.slice(cfg.root.length + 1)) : ["Status.StateCurrent", "Batch.GTIN"];
      const dvs = await session.read(tags.map((t) => ({ nodeId: id(t), attributeId: AttributeIds.Value })));
      out.values = {};
      tags.forEach((t, i) => {
        out.values[t] = { status: dvs[i].statusCode.name, type: DataType[dvs[i].value.dataType], value: dvs[i].value.value };
      });
      const dt = await session.read({ nodeId: id("Status.StateCurrent"), attributeId: AttributeIds.DataType });
      out.state_datatype = dt.value.value ? dt.value.value.toString() : String(dt.value.value);

      const write = async (p, dataType, value, attributeId = AttributeIds.Value) => {
        const sc = await session.write({ nodeId: id(p), attributeId, value: { value: { dataType, value } } });
        return sc.name;
      };
      const waitState = async (want) => {
        const until = Date.now() + 10000;
        for (;;) {
          const dv = await session.read({ nodeId: id("Status.StateCurrent"), attributeId: AttributeIds.Value });
          if (dv.value.value === want || Date.now() > until) return dv.value.value;
          await sleep(100);
        }
      };
      out.writes = {};
      if (!full) {
        out.writes.hold = await write("Command.CntrlCmd", DataType.Int32, 4);
        out.state_after_hold = await waitState(11);
        out.writes.unhold = await write("Command.CntrlCmd", DataType.Int32, 5);
        out.state_after_unhold = await waitState(6);
        out.writes.start_while_running = await write("Command.CntrlCmd", DataType.Int32, 2);
        return out;
      }

      // Subscribe to the processed count while the line runs.
      const sub = ClientSubscription.create(session, { requestedPublishingInterval: 100, requestedLifetimeCount: 600,
        requestedMaxKeepAliveCount: 10, maxNotificationsPerPublish: 100, publishingEnabled: true, priority: 1 });
      const counts = [];
      const item = ClientMonitoredItem.create(sub, { nodeId: id("Admin.ProdProcessedCount"), attributeId: AttributeIds.Value },
        { samplingInterval: 100, discardOldest: true, queueSize: 1 }, TimestampsToReturn.Both);
      item.on("changed", (dv) => counts.push(dv.value.value));
      const until = Date.now() + 20000;
      while (Date.now() < until && (counts.length < 3 || counts[counts.length - 1] <= counts[0])) await sleep(100);
      out.counts = counts.slice();
      await sub.terminate();

      out.writes.hold = await write("Command.CntrlCmd", DataType.Int32, 4);
      out.state_after_hold = await waitState(11);
      const cmd = await session.read({ nodeId: id("Command.CntrlCmd"), attributeId: AttributeIds.Value });
      out.cntrlcmd_after_hold = cmd.value.value;
      out.writes.unhold = await write("Command.CntrlCmd", DataType.Int32, 5);
      out.state_after_unhold = await waitState(6);
      out.writes.start_while_running = await write("Command.CntrlCmd", DataType.Int32, 2);
      out.writes.out_of_range = await write("Command.CntrlCmd", DataType.Int32, 42);
      out.writes.string = await write("Command.CntrlCmd", DataType.String, "hold");
      out.writes.int16 = await write("Command.CntrlCmd", DataType.Int16, 4);
      out.writes.status_tag = await write("Status.StateCurrent", DataType.Int32, 1);
      out.writes.count_tag = await write("Admin.ProdProcessedCount", DataType.Int32, 0);
      out.writes.display_name = await write("Command.CntrlCmd", DataType.LocalizedText, { text: "pwned" }, AttributeIds.DisplayName);
      const dn = await session.read({ nodeId: id("Command.CntrlCmd"), attributeId: AttributeIds.DisplayName });
      out.display_name = dn.value.value ? dn.value.value.text : null;
    } finally {
      await session.close();
    }
    return out;
  });
}

(async () => {
  for (const [policy, mode, full] of cfg.modes) {
    const res = { policy, mode, full: full === "full" };
    try {
      res.anonymous_error = await sessionError(policy, mode, { type: UserTokenType.Anonymous });
      res.wrong_password_error = await sessionError(policy, mode, { type: UserTokenType.UserName, userName: cfg.user, password: "wrong-" + cfg.password });
      Object.assign(res, await operator(policy, mode, full === "full"));
    } catch (e) {
      res.error = String(e.stack || e);
    }
    report(res);
  }
  process.exit(0);
})().catch((e) => { report({ error: String(e.stack || e) }); process.exit(1); });
