// The session log on the socket data path (link.ts): MIRRORLB_DATAPATH is read once when the
// data path loads, so it is set before the daemon's modules are imported.
process.env.MIRRORLB_DATAPATH = 'stream';
await import('./session-log.test.js');
