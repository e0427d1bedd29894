// reference.cjs computes the TF.js descriptors that TestDlibMatchesTFJS
// compares the converted ONNX model with: @vladmandic/face-api's own
// FaceRecognitionNet, on TF.js's pure-JavaScript cpu backend, over the
// 150x150 chips (*.ppm) in this folder. It writes tfjs.json to stdout.
//
// Run it from an empty folder (no native code is installed):
//
//   npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
//   npm install --ignore-scripts @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
//   NODE_PATH=$PWD/node_modules node $REPO/models/face/testdata/dlib/reference.cjs \
//     $PWD/package $REPO/models/face/testdata/dlib > $REPO/models/face/testdata/dlib/tfjs.json
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [pkg, dir] = process.argv.slice(2);
  if (!pkg || !dir) throw new Error('usage: node reference.cjs FACE_API_PACKAGE_DIR CHIPS_DIR');
  const faceapi = require(path.join(pkg, 'dist', 'face-api.node-wasm.js'));
  const tf = faceapi.tf;
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'model', 'face_recognition_model-weights_manifest.json')));
  const bin = fs.readFileSync(path.join(pkg, 'model', 'face_recognition_model.bin'));
  const weights = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length), manifest[0].weights);
  const net = faceapi.nets.faceRecognitionNet;
  net.loadFromWeightMap(weights);
  const header = 'P6\n150 150\n255\n';
  const out = {
    package: '@vladmandic/face-api@' + JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'))).version,
    tfjs: tf.version_core,
    backend: tf.getBackend(),
    descriptors: {},
  };
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.ppm')).sort()) {
    const data = fs.readFileSync(path.join(dir, name));
    if (data.subarray(0, header.length).toString('latin1') !== header) throw new Error(name + ' is not a 150x150 binary PPM');
    const rgb = Int32Array.from(data.subarray(header.length));
    const input = tf.tensor3d(rgb, [150, 150, 3], 'int32');
    const desc = await net.computeFaceDescriptor(input);
    input.dispose();
    out.descriptors[name] = Array.from(desc);
  }
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

main().catch((err) => { console.error(err); process.exit(1); });
