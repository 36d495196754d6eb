#!/usr/bin/env node
// The floor the webhook's throughput is measured against: a bare node:https server that reads a
// review's body, JSON.parses it and answers a fixed AdmissionReview. What a review costs beyond
// this is what the webhook itself costs. Serves the same certificate and key as the webhook under
// test (TLS_CERT_FILE, TLS_KEY_FILE); prints its port on stdout once it listens.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const ANSWER = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'floor', allowed: true } });
const LENGTH = String(Buffer.byteLength(ANSWER));

const server = createServer(
  { cert: readFileSync(process.env.TLS_CERT_FILE), key: readFileSync(process.env.TLS_KEY_FILE), minVersion: 'TLSv1.2', keepAliveTimeout: 120_000 },
  (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': LENGTH });
      res.end(ANSWER);
    });
  },
);
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.once('SIGTERM', () => process.exit(0));
