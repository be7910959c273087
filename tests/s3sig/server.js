// The suite's signature-checking S3 server (tests/conftest.py: s3sig_server).
// @20minutes/s3rver verifies AWS SigV4 on Authorization headers and on
// pre-signed query strings (lib/signature/v4.js), where moto checks neither.
// Its only account is hard-coded (S3RVER/S3RVER), so this launcher swaps in
// the key pair the tests sign with.
//
// usage: node server.js <data dir> <port>   (env S3SIG_ACCESS_KEY, S3SIG_SECRET_KEY)
'use strict';

const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');

const [directory, port] = process.argv.slice(2);
const accessKey = process.env.S3SIG_ACCESS_KEY;
const secretKey = process.env.S3SIG_SECRET_KEY;
if (!directory || !port || !accessKey || !secretKey) {
  console.error('usage: S3SIG_ACCESS_KEY=.. S3SIG_SECRET_KEY=.. node server.js <dir> <port>');
  process.exit(2);
}

// No well-known key may open this server: only the pair the tests chose.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: true,
  vhostBuckets: false,
});
// s3rver serves a request that carries no signature at all as if it were
// allowed (it has no bucket ACLs). A real bucket is private: refuse those
// (403 AccessDenied), so "strip the signature" is an attack the tests can
// try too. Every signed request still goes to s3rver's own SigV4 check.
server.middleware.unshift(async function privateBucket(ctx, next) {
  const q = ctx.query;
  if (ctx.get('authorization') || 'X-Amz-Algorithm' in q || 'Signature' in q) {
    return next();
  }
  ctx.status = 403;
  ctx.type = 'application/xml';
  ctx.body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';
});

server
  .run()
  .then(({ address, port: bound }) => console.log(`s3sig listening on ${address}:${bound}`))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
