// A Sparkplug B edge node run by Eclipse Tahu's reference JavaScript client (sparkplug-client, sparkplug-payload
// from the npm registry): the third-party implementation the ingest's tests and `./scripts/run --sparkplug` talk to.
// Nothing here encodes Sparkplug itself: topics, seq, births and the Will are Tahu's.
//
//   node edge.js --url mqtt://127.0.0.1:1883 --group G --node N --device D1 [--device D2] [--bdseq 0]
//                [--username U --password P] [--simulate SECONDS]
//
// One JSON command per line on stdin, one JSON event per line on stdout:
//   {"cmd": "ddata", "device": "D1", "metrics": [{"alias": 1, "type": "Double", "value": 1.5}, ...]}
//   {"cmd": "ndata", "metrics": [...]}        {"cmd": "dbirth", "device": "D1"}   {"cmd": "ddeath", "device": "D1"}
//   {"cmd": "skip", "n": 3}   (the next message skips n seq numbers: a gap)
//   {"cmd": "stop"}           (disconnects cleanly, publishing NDEATH)
// Events: {"event": "connected"}, {"event": "births", "seq": n}, {"event": "published", "type": ..., "seq": n},
// {"event": "rebirth"} (an NCMD Node Control/Rebirth arrived; births follow), {"event": "error", ...}.
// Killing the process (SIGKILL) drops the connection without a DISCONNECT: the broker publishes the Will (NDEATH).
"use strict";
const sparkplug = require("sparkplug-client");
const encoder = require("sparkplug-payload").get("spBv1.0");
const readline = require("readline");

function args(argv) {
  const out = { device: [] };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (key === "device") out.device.push(argv[i + 1]); else out[key] = argv[i + 1];
  }
  return out;
}
const opts = args(process.argv);
const bdSeq = Number(opts.bdseq || 0);
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");

// What each device declares in its birth: name, alias, datatype, a first value. The names match the profile
// sparkplug_press of deploy/local/registry.yaml; "Operator/Badge" is personal data.
const DEVICE_METRICS = [
  { name: "Barrel/Temperature", alias: 1, type: "Double", value: 220.5 },
  { name: "Injection/Pressure", alias: 2, type: "Float", value: 900.25 },
  { name: "Cycle/Count", alias: 3, type: "Int32", value: -1 },
  { name: "Mold/Clamped", alias: 4, type: "Boolean", value: true },
  { name: "Operator/Badge", alias: 5, type: "String", value: "B-1001" },
  { name: "Fault/Code", alias: 6, type: "Int64", value: -3 },
  { name: "Shift/Started", alias: 7, type: "DateTime", value: 1764835200000 },
];
const NODE_METRICS = [
  { name: "Node Control/Rebirth", type: "Boolean", value: false },
  { name: "Properties/Firmware", alias: 100, type: "String", value: "tahu-js-3.2.4" },
];

const client = sparkplug.newClient({
  serverUrl: opts.url, groupId: opts.group, edgeNode: opts.node, clientId: opts.clientid || `${opts.group}-${opts.node}`,
  username: opts.username || "", password: opts.password || "", version: "spBv1.0", publishDeath: true,
  keepalive: 5,
});
// sparkplug-client 3.2.4 keeps bdSeq at 0 for every session; a real edge node counts its connections. Set this
// session's bdSeq on the client and in its Will (built in the constructor, sent with the CONNECT that follows).
client.bdSeq = bdSeq;
client.mqttOptions.will.payload = Buffer.from(encoder.encodePayload({
  timestamp: Date.now(), metrics: [{ name: "bdSeq", type: "UInt64", value: bdSeq }],
}));

const now = () => Date.now();
function births() {
  client.publishNodeBirth({ timestamp: now(), metrics: NODE_METRICS.map((m) => ({ ...m })) });
  for (const device of opts.device) deviceBirth(device);
  emit({ event: "births", seq: client.seq });
}
function deviceBirth(device) {
  client.publishDeviceBirth(device, { timestamp: now(), metrics: DEVICE_METRICS.map((m) => ({ ...m })) });
}

client.on("birth", births);
client.on("connect", () => emit({ event: "connected" }));
client.on("error", (err) => emit({ event: "error", message: String(err) }));
client.on("ncmd", (payload) => {
  const rebirth = (payload.metrics || []).find((m) => m.name === "Node Control/Rebirth" && m.value === true);
  if (rebirth) {
    emit({ event: "rebirth" });
    births();
  }
});

function publish(command) {
  const type = command.cmd;
  const metrics = command.metrics || [];
  if (type === "ddata") client.publishDeviceData(command.device, { timestamp: command.timestamp || now(), metrics });
  else if (type === "ndata") client.publishNodeData({ timestamp: command.timestamp || now(), metrics });
  else if (type === "dbirth") deviceBirth(command.device);
  else if (type === "ddeath") client.publishDeviceDeath(command.device, { timestamp: now() });
  else if (type === "skip") { client.seq = (client.seq + Number(command.n)) % 256; }
  else if (type === "stop") { client.stop(); setTimeout(() => process.exit(0), 200); return; }
  else { emit({ event: "error", message: `unknown command ${type}` }); return; }
  emit({ event: "published", type, seq: client.seq });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  try { publish(JSON.parse(line)); } catch (err) { emit({ event: "error", message: String(err) }); }
});

// --simulate N: publish DDATA for every device every N seconds (./scripts/run --sparkplug)
if (opts.simulate) {
  let cycle = 0;
  setInterval(() => {
    if (!client.connected) return;
    cycle += 1;
    for (const device of opts.device) {
      client.publishDeviceData(device, { timestamp: now(), metrics: [
        { alias: 1, type: "Double", value: 215 + 10 * Math.random() },
        { alias: 2, type: "Float", value: 880 + 40 * Math.random() },
        { alias: 3, type: "Int32", value: cycle },
      ] });
    }
  }, Number(opts.simulate) * 1000);
}
