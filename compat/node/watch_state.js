// Reads discover.js's log and prints the keys of the last complete `console.log(instances)`
// block, one per line (nothing for `{}`). Node prints short objects on one line and long ones
// as `{` ... `}` blocks; only completed blocks count.
'use strict';
const fs = require('fs');

const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n');
let last = null;
let open = null;
for (const line of lines) {
  if (open === null && line.startsWith('{')) {
    open = [];
  }
  if (open === null) {
    continue;
  }
  open.push(line);
  if (line.endsWith('}') && (line === '}' || line.startsWith('{'))) {
    last = open;
    open = null;
  }
}
if (last !== null) {
  const keys = last.join('\n').match(/\/services\/service_a\/datacenter_x\/[0-9a-f-]+/g) || [];
  for (const key of keys) {
    console.log(key);
  }
}
