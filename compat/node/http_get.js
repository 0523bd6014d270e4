// Prints the status code and body of GET http://127.0.0.1:PORT/PATH; exits 1 on a
// connection error. Node is already needed here, so no curl dependency.
'use strict';
const http = require('http');

const [port, path] = process.argv.slice(2);
const req = http.get({ host: '127.0.0.1', port: Number(port), path, timeout: 2000 }, (res) => {
  let body = '';
  res.on('data', (chunk) => { body += chunk; });
  res.on('end', () => { console.log(res.statusCode + ' ' + body); });
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', () => process.exit(1));
