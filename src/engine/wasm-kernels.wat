;; Kernels of our own for the wasm backend, in WebAssembly SIMD (128-bit, f32x4): every matrix product of a training
;; step — batched products in 4 x 8 tiles for the many-item shapes of attention and LoRA (tfjs-backend-wasm runs a
;; batch of matrices with a plain scalar loop, ~1 GFLOP/s), and a cache-blocked 2-D product (gemm_block) for the
;; linear layers and the LM head (~43 GFLOP/s a thread here, against 31-37 for tfjs's XNNPACK) whose blocks of
;; columns threads share (wasm-kernel-threads.ts) — attention's masked softmax and its backward pass, RMSNorm and LayerNorm forward and
;; backward, and the cross-entropy's softmax with its statistics and its gradient, each in one sweep per row, gelu_new
;; and SwiGLU's silu(g) · u forward and backward element by element on an f32x4 exp of our own (tfjs runs each of
;; these as several separate ops), and the row lookups in frozen tables.
;; The batched products' multiply-adds are relaxed SIMD's f32x4.relaxed_madd (one fused multiply-add where the CPU has
;; it: 15-20% faster on attention's and LoRA's shallow products in Chromium 156; gemm_block, at the FP pipes' peak
;; with a multiply and an add, measured no faster with it, so it keeps them).
;; tools/build-wasm-kernels.ts assembles this file into wasm-kernels-binary.ts four times: as written and with each
;; relaxed_madd spelt as a multiply and an add (engines without relaxed SIMD), each also with a shared memory for
;; tfjs's threaded build. The module imports tfjs-backend-wasm's own memory, so it reads and writes
;; tensors where they are (no copies); every pointer is a byte offset into that memory.
(module
  (import "env" "memory" (memory 1))

;; c[n, i, j] = sum_k a(n, i, k) * b[n, k, j]
  ;;   a(n, i, k) is the f32 at a + 4 * (n * aBatch + i * aRow + k * aCol): a [M, K] (aRow = K, aCol = 1) or
  ;;   aᵀ stored as [K, M] (aRow = 1, aCol = M), so both a·b and aᵀ·b run without a transpose;
  ;;   b is [K, P] row-major per item (bBatch floats apart); c is [M, P] row-major per item.
  ;; Tiles of 4 rows x 8 columns (eight f32x4 accumulators: four rows share each load of b), then the last
  ;; P mod 8 columns and M mod 4 rows one value at a time.
  ;; Causal attention (mode ≠ 0; the caller passes it only where M mod 4 = 0, P mod 8 = 0 and T mod 4 = 0): the
  ;; [G·T, S] matrices of an item (row g·T + t for query t of head g; S = past + T keys) are 0 where key s > past + t,
  ;; and only their other entries are computed or read:
  ;;   mode 1, c is such a matrix (scores, dP): tiles wholly past a row tile's last key are written as 0;
  ;;   mode 2, a is one (P · v, dS · k): k runs to the row tile's last key;
  ;;   mode 3, aᵀ is one (Pᵀ · dout, dSᵀ · q; row i is key s, k = g·T + t): k runs over t ≥ s − past in each head.
  (func (export "matmul")
    (param $a i32) (param $b i32) (param $c i32)
    (param $N i32) (param $M i32) (param $K i32) (param $P i32)
    (param $aBatch i32) (param $aRow i32) (param $aCol i32) (param $bBatch i32)
    (param $mode i32) (param $T i32) (param $past i32)
    (local $n i32) (local $i i32) (local $j i32) (local $k i32)
    (local $aItem i32) (local $bItem i32) (local $cItem i32) (local $M4 i32) (local $P8 i32)
    (local $pa i32) (local $pb i32) (local $pc i32) (local $aStep i32) (local $bStep i32) (local $aRowB i32)
    (local $b0 v128) (local $b1 v128) (local $s v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $jEnd i32) (local $kEnd i32) (local $k0 i32) (local $k1 i32) (local $g i32) (local $heads i32)
    (local $lead i32)
    (local.set $aStep (i32.shl (local.get $aCol) (i32.const 2)))
    (local.set $bStep (i32.shl (local.get $P) (i32.const 2)))
    (local.set $aRowB (i32.shl (local.get $aRow) (i32.const 2)))
    (local.set $M4 (i32.and (local.get $M) (i32.const -4)))
    (local.set $P8 (i32.and (local.get $P) (i32.const -8)))
    ;; mode 3: k runs in one segment per head
    (local.set $heads (i32.const 1))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (local.set $heads (i32.div_u (local.get $K) (local.get $T)))))
    (local.set $n (i32.const 0))
    (block $nDone
      (loop $nLoop
        (br_if $nDone (i32.ge_u (local.get $n) (local.get $N)))
        (local.set $aItem
          (i32.add (local.get $a) (i32.shl (i32.mul (local.get $n) (local.get $aBatch)) (i32.const 2))))
        (local.set $bItem
          (i32.add (local.get $b) (i32.shl (i32.mul (local.get $n) (local.get $bBatch)) (i32.const 2))))
        (local.set $cItem
          (i32.add (local.get $c) (i32.shl (i32.mul (local.get $n) (i32.mul (local.get $M) (local.get $P))) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $iDone
          (loop $iLoop
            (br_if $iDone (i32.ge_u (local.get $i) (local.get $M4)))
            ;; this row tile's columns and depth: all, or to its last query's last key (modes 1 and 2), and the
            ;; keys' lead in mode 3 (t from s − past)
            (local.set $jEnd (local.get $P8))
            (local.set $kEnd (local.get $K))
            (local.set $lead (i32.const 0))
            (if (i32.eq (local.get $mode) (i32.const 1))
              (then (local.set $jEnd (select (local.get $P8)
                (local.tee $k (i32.and (i32.add (i32.add (i32.rem_u (local.get $i) (local.get $T)) (local.get $past))
                  (i32.const 11)) (i32.const -8)))
                (i32.lt_u (local.get $P8) (local.get $k))))))
            (if (i32.eq (local.get $mode) (i32.const 2))
              (then (local.set $kEnd (select (local.get $K)
                (local.tee $k (i32.add (i32.add (i32.rem_u (local.get $i) (local.get $T)) (local.get $past)) (i32.const 4)))
                (i32.lt_u (local.get $K) (local.get $k))))))
            (if (i32.and (i32.eq (local.get $mode) (i32.const 3)) (i32.gt_u (local.get $i) (local.get $past)))
              (then (local.set $lead (i32.sub (local.get $i) (local.get $past)))))
            (local.set $j (i32.const 0))
            (block $jDone
              (loop $jLoop
                (br_if $jDone (i32.ge_u (local.get $j) (local.get $jEnd)))
                (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
                (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
                (local.set $c20 (v128.const i32x4 0 0 0 0)) (local.set $c21 (v128.const i32x4 0 0 0 0))
                (local.set $c30 (v128.const i32x4 0 0 0 0)) (local.set $c31 (v128.const i32x4 0 0 0 0))
                (local.set $g (i32.const 0))
                (loop $segLoop
                  ;; k in [k0, k1): [0, kEnd), or head g's [g·T + lead, (g + 1)·T) in mode 3
                  (local.set $k0 (i32.const 0))
                  (local.set $k1 (local.get $kEnd))
                  (if (i32.eq (local.get $mode) (i32.const 3))
                    (then
                      (local.set $k0 (i32.add (i32.mul (local.get $g) (local.get $T)) (local.get $lead)))
                      (local.set $k1 (i32.mul (i32.add (local.get $g) (i32.const 1)) (local.get $T)))))
                  (local.set $pa
                    (i32.add (i32.add (local.get $aItem) (i32.mul (local.get $i) (local.get $aRowB)))
                      (i32.mul (local.get $k0) (local.get $aStep))))
                  (local.set $pb (i32.add (i32.add (local.get $bItem) (i32.shl (local.get $j) (i32.const 2)))
                    (i32.mul (local.get $k0) (local.get $bStep))))
                  (local.set $k (select (i32.sub (local.get $k1) (local.get $k0)) (i32.const 0)
                    (i32.gt_u (local.get $k1) (local.get $k0))))
                  (block $kDone
                    (loop $kLoop
                      (br_if $kDone (i32.eqz (local.get $k)))
                      (local.set $b0 (v128.load offset=0 (local.get $pb)))
                      (local.set $b1 (v128.load offset=16 (local.get $pb)))
                      (local.set $s (f32x4.splat (f32.load (local.get $pa))))
                      (local.set $c00 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $c00)))
                      (local.set $c01 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $c01)))
                      (local.set $s (f32x4.splat (f32.load (i32.add (local.get $pa) (local.get $aRowB)))))
                      (local.set $c10 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $c10)))
                      (local.set $c11 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $c11)))
                      (local.set $s (f32x4.splat (f32.load
                        (i32.add (local.get $pa) (i32.shl (local.get $aRowB) (i32.const 1))))))
                      (local.set $c20 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $c20)))
                      (local.set $c21 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $c21)))
                      (local.set $s (f32x4.splat (f32.load
                        (i32.add (local.get $pa) (i32.mul (local.get $aRowB) (i32.const 3))))))
                      (local.set $c30 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $c30)))
                      (local.set $c31 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $c31)))
                      (local.set $pa (i32.add (local.get $pa) (local.get $aStep)))
                      (local.set $pb (i32.add (local.get $pb) (local.get $bStep)))
                      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
                      (br $kLoop)))
                  (local.set $g (i32.add (local.get $g) (i32.const 1)))
                  (br_if $segLoop (i32.lt_u (local.get $g) (local.get $heads))))
                (local.set $pc
                  (i32.add (local.get $cItem)
                    (i32.shl (i32.add (i32.mul (local.get $i) (local.get $P)) (local.get $j)) (i32.const 2))))
                (v128.store offset=0 (local.get $pc) (local.get $c00))
                (v128.store offset=16 (local.get $pc) (local.get $c01))
                (local.set $pc (i32.add (local.get $pc) (local.get $bStep)))
                (v128.store offset=0 (local.get $pc) (local.get $c10))
                (v128.store offset=16 (local.get $pc) (local.get $c11))
                (local.set $pc (i32.add (local.get $pc) (local.get $bStep)))
                (v128.store offset=0 (local.get $pc) (local.get $c20))
                (v128.store offset=16 (local.get $pc) (local.get $c21))
                (local.set $pc (i32.add (local.get $pc) (local.get $bStep)))
                (v128.store offset=0 (local.get $pc) (local.get $c30))
                (v128.store offset=16 (local.get $pc) (local.get $c31))
                (local.set $j (i32.add (local.get $j) (i32.const 8)))
                (br $jLoop)))
            ;; mode 1: the tiles past the row tile's last key are 0
            (block $zDone
              (loop $zLoop
                (br_if $zDone (i32.ge_u (local.get $j) (local.get $P8)))
                (local.set $pc
                  (i32.add (local.get $cItem)
                    (i32.shl (i32.add (i32.mul (local.get $i) (local.get $P)) (local.get $j)) (i32.const 2))))
                (v128.store offset=0 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (v128.store offset=16 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (local.set $pc (i32.add (local.get $pc) (local.get $bStep)))
                (v128.store offset=0 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (v128.store offset=16 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (local.set $pc (i32.add (local.get $pc) (local.get $bStep)))
                (v128.store offset=0 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (v128.store offset=16 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (local.set $pc (i32.add (local.get $pc) (local.get $bStep)))
                (v128.store offset=0 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (v128.store offset=16 (local.get $pc) (v128.const i32x4 0 0 0 0))
                (local.set $j (i32.add (local.get $j) (i32.const 8)))
                (br $zLoop)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $iLoop)))
        ;; the columns right of the tiles (rows above M4), then the last rows (all columns)
        (call $rect (local.get $aItem) (local.get $bItem) (local.get $cItem) (i32.const 0) (local.get $M4)
          (local.get $P8) (local.get $P) (local.get $K) (local.get $P) (local.get $aRow) (local.get $aCol))
        (call $rect (local.get $aItem) (local.get $bItem) (local.get $cItem) (local.get $M4) (local.get $M)
          (i32.const 0) (local.get $P) (local.get $K) (local.get $P) (local.get $aRow) (local.get $aCol))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $nLoop))))

  ;; One item's c[i, j] for rows [i0, i1) and columns [j0, j1), one value at a time (the edges of the tiles).
  (func $rect
    (param $a i32) (param $b i32) (param $c i32) (param $i0 i32) (param $i1 i32) (param $j0 i32) (param $j1 i32)
    (param $K i32) (param $P i32) (param $aRow i32) (param $aCol i32)
    (local $i i32) (local $j i32) (local $k i32) (local $pa i32) (local $pb i32) (local $sum f32)
    (local.set $i (local.get $i0))
    (block $iDone
      (loop $iLoop
        (br_if $iDone (i32.ge_u (local.get $i) (local.get $i1)))
        (local.set $j (local.get $j0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $j1)))
            (local.set $sum (f32.const 0))
            (local.set $pa (i32.add (local.get $a) (i32.shl (i32.mul (local.get $i) (local.get $aRow)) (i32.const 2))))
            (local.set $pb (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $k (local.get $K))
            (block $kDone
              (loop $kLoop
                (br_if $kDone (i32.eqz (local.get $k)))
                (local.set $sum
                  (f32.add (local.get $sum) (f32.mul (f32.load (local.get $pa)) (f32.load (local.get $pb)))))
                (local.set $pa (i32.add (local.get $pa) (i32.shl (local.get $aCol) (i32.const 2))))
                (local.set $pb (i32.add (local.get $pb) (i32.shl (local.get $P) (i32.const 2))))
                (local.set $k (i32.sub (local.get $k) (i32.const 1)))
                (br $kLoop)))
            (f32.store
              (i32.add (local.get $c) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $P)) (local.get $j)) (i32.const 2)))
              (local.get $sum))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iLoop))))

  ;; Columns [j0, j0 + w) of b, b(k, j) the f32 at b + 4 * (k * bRow + j * bCol) (so b or bᵀ, in place), copied into
  ;; panels of 8 columns, each K rows of 32 contiguous bytes: dst[(p * K + k) * 8 + t] = b(k, j0 + 8p + t), zero past
  ;; j0 + w. The product then streams each panel from the cache instead of striding through b once per row tile.
  (func $pack (param $b i32) (param $dst i32) (param $K i32) (param $j0 i32) (param $w i32)
    (param $bRow i32) (param $bCol i32)
    (local $p i32) (local $k i32) (local $t i32) (local $j i32) (local $src i32) (local $n i32)
    (local $bRowB i32) (local $bColB i32)
    (local.set $bRowB (i32.shl (local.get $bRow) (i32.const 2)))
    (local.set $bColB (i32.shl (local.get $bCol) (i32.const 2)))
    (local.set $p (i32.const 0))
    (block $pDone
      (loop $pLoop
        (br_if $pDone (i32.ge_s (i32.shl (local.get $p) (i32.const 3)) (local.get $w)))
        (local.set $j (i32.add (local.get $j0) (i32.shl (local.get $p) (i32.const 3))))
        (local.set $n (i32.sub (local.get $w) (i32.shl (local.get $p) (i32.const 3))))
        (if (i32.gt_s (local.get $n) (i32.const 8)) (then (local.set $n (i32.const 8))))
        (local.set $src (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $bColB))))
        (if (i32.and (i32.eq (local.get $n) (i32.const 8)) (i32.eq (local.get $bCol) (i32.const 1)))
          (then
            (local.set $k (local.get $K))
            (block $kDone (loop $kLoop
              (br_if $kDone (i32.eqz (local.get $k)))
              (v128.store offset=0 (local.get $dst) (v128.load offset=0 (local.get $src)))
              (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src)))
              (local.set $src (i32.add (local.get $src) (local.get $bRowB)))
              (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
              (local.set $k (i32.sub (local.get $k) (i32.const 1)))
              (br $kLoop))))
          (else (if (i32.and (i32.eq (local.get $n) (i32.const 8)) (i32.eq (local.get $bRow) (i32.const 1)))
          (then
            ;; bᵀ in place (each column contiguous along k): eight columns at a time, unrolled
            (local.set $k (local.get $K))
            (block $kDone (loop $kLoop
              (br_if $kDone (i32.eqz (local.get $k)))
              (f32.store offset=0 (local.get $dst) (f32.load (local.get $src)))
              (f32.store offset=4 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 1)))))
              (f32.store offset=8 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 2)))))
              (f32.store offset=12 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 3)))))
              (f32.store offset=16 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 4)))))
              (f32.store offset=20 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 5)))))
              (f32.store offset=24 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 6)))))
              (f32.store offset=28 (local.get $dst) (f32.load (i32.add (local.get $src) (i32.mul (local.get $bColB) (i32.const 7)))))
              (local.set $src (i32.add (local.get $src) (i32.const 4)))
              (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
              (local.set $k (i32.sub (local.get $k) (i32.const 1)))
              (br $kLoop))))
          (else
            (local.set $k (i32.const 0))
            (block $kDone (loop $kLoop
              (br_if $kDone (i32.ge_u (local.get $k) (local.get $K)))
              (local.set $t (i32.const 0))
              (block $tDone (loop $tLoop
                (br_if $tDone (i32.ge_u (local.get $t) (i32.const 8)))
                (if (i32.lt_s (local.get $t) (local.get $n))
                  (then (f32.store (i32.add (local.get $dst) (i32.shl (local.get $t) (i32.const 2)))
                    (f32.load (i32.add (i32.add (local.get $src) (i32.mul (local.get $k) (local.get $bRowB)))
                      (i32.mul (local.get $t) (local.get $bColB))))))
                  (else (f32.store (i32.add (local.get $dst) (i32.shl (local.get $t) (i32.const 2))) (f32.const 0))))
                (local.set $t (i32.add (local.get $t) (i32.const 1)))
                (br $tLoop)))
              (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br $kLoop)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $pLoop))))

  ;; The first min(n, 8) lanes of (lo, hi) stored at pc (the last panel of a block may be narrower than 8), added
  ;; to what is there when add is 1 (the second and later slices of the depth).
  (func $store8 (param $pc i32) (param $n i32) (param $lo v128) (param $hi v128) (param $add i32)
    (if (i32.ge_s (local.get $n) (i32.const 8))
      (then
        (if (local.get $add)
          (then
            (local.set $lo (f32x4.add (local.get $lo) (v128.load offset=0 (local.get $pc))))
            (local.set $hi (f32x4.add (local.get $hi) (v128.load offset=16 (local.get $pc))))))
        (v128.store offset=0 (local.get $pc) (local.get $lo))
        (v128.store offset=16 (local.get $pc) (local.get $hi))
        (return)))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (call $put (i32.add (local.get $pc) (i32.const 0)) (f32x4.extract_lane 0 (local.get $lo)) (local.get $add))))
    (if (i32.gt_s (local.get $n) (i32.const 1))
      (then (call $put (i32.add (local.get $pc) (i32.const 4)) (f32x4.extract_lane 1 (local.get $lo)) (local.get $add))))
    (if (i32.gt_s (local.get $n) (i32.const 2))
      (then (call $put (i32.add (local.get $pc) (i32.const 8)) (f32x4.extract_lane 2 (local.get $lo)) (local.get $add))))
    (if (i32.gt_s (local.get $n) (i32.const 3))
      (then (call $put (i32.add (local.get $pc) (i32.const 12)) (f32x4.extract_lane 3 (local.get $lo)) (local.get $add))))
    (if (i32.gt_s (local.get $n) (i32.const 4))
      (then (call $put (i32.add (local.get $pc) (i32.const 16)) (f32x4.extract_lane 0 (local.get $hi)) (local.get $add))))
    (if (i32.gt_s (local.get $n) (i32.const 5))
      (then (call $put (i32.add (local.get $pc) (i32.const 20)) (f32x4.extract_lane 1 (local.get $hi)) (local.get $add))))
    (if (i32.gt_s (local.get $n) (i32.const 6))
      (then (call $put (i32.add (local.get $pc) (i32.const 24)) (f32x4.extract_lane 2 (local.get $hi)) (local.get $add)))))

  ;; f32 v stored at p, or added to the value there when add is 1
  (func $put (param $p i32) (param $v f32) (param $add i32)
    (if (local.get $add) (then (local.set $v (f32.add (local.get $v) (f32.load (local.get $p))))))
    (f32.store (local.get $p) (local.get $v)))

  ;; Columns [j0, j0 + w) of c[M, P] = a(M, K) · b(K, P), the cache-blocked product for large 2-D shapes. The depth
  ;; is taken in slices of 256: each slice of the block's columns of b is packed into scratch (at most 256 * 4 * 64
  ;; bytes for a block of 64 columns), then every row tile of 4 runs over the packed panels with eight f32x4
  ;; accumulators, adding into c after the first slice (and in the first too when acc is 1: c += a · b); panel and row
  ;; tile stay in the caches. a(i, k) is the f32 at
  ;; a + 4 * (i * aRow + k * aCol) (a or aᵀ), b as in $pack, c row-major. Blocks of columns are independent: threads
  ;; each take whole blocks (wasm-kernel-threads.ts).
  (func (export "gemm_block")
    (param $a i32) (param $b i32) (param $c i32) (param $M i32) (param $K i32) (param $P i32)
    (param $aRow i32) (param $aCol i32) (param $bRow i32) (param $bCol i32)
    (param $scratch i32) (param $j0 i32) (param $w i32) (param $acc i32)
    (local $k0 i32) (local $kn i32)
    (block $done (loop $slices
      (br_if $done (i32.ge_u (local.get $k0) (local.get $K)))
      (local.set $kn (i32.sub (local.get $K) (local.get $k0)))
      (if (i32.gt_u (local.get $kn) (i32.const 256)) (then (local.set $kn (i32.const 256))))
      (call $pack (i32.add (local.get $b) (i32.shl (i32.mul (local.get $k0) (local.get $bRow)) (i32.const 2)))
        (local.get $scratch) (local.get $kn) (local.get $j0) (local.get $w) (local.get $bRow) (local.get $bCol))
      (call $tiles (i32.add (local.get $a) (i32.shl (i32.mul (local.get $k0) (local.get $aCol)) (i32.const 2)))
        (local.get $c) (local.get $M) (local.get $kn) (local.get $P) (local.get $aRow) (local.get $aCol)
        (local.get $scratch) (local.get $j0) (local.get $w)
        (i32.or (local.get $acc) (i32.ne (local.get $k0) (i32.const 0))))
      (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
      (br $slices))))

  ;; One depth slice of gemm_block: c[i, j0 + j] (+)= sum over k < K of a(i, k) * packed(k, j), all rows.
  (func $tiles
    (param $a i32) (param $c i32) (param $M i32) (param $K i32) (param $P i32) (param $aRow i32) (param $aCol i32)
    (param $scratch i32) (param $j0 i32) (param $w i32) (param $add i32)
    (local $i i32) (local $p i32) (local $k i32) (local $n i32) (local $M4 i32)
    (local $pa i32) (local $pb i32) (local $pc i32) (local $aStep i32) (local $aRowB i32) (local $PB i32)
    (local $b0 v128) (local $b1 v128) (local $s v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $aStep (i32.shl (local.get $aCol) (i32.const 2)))
    (local.set $aRowB (i32.shl (local.get $aRow) (i32.const 2)))
    (local.set $PB (i32.shl (local.get $P) (i32.const 2)))
    (local.set $M4 (i32.and (local.get $M) (i32.const -4)))
    (local.set $i (i32.const 0))
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u (local.get $i) (local.get $M4)))
      (local.set $p (i32.const 0))
      (block $pDone (loop $pLoop
        (br_if $pDone (i32.ge_s (i32.shl (local.get $p) (i32.const 3)) (local.get $w)))
        (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
        (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
        (local.set $c20 (v128.const i32x4 0 0 0 0)) (local.set $c21 (v128.const i32x4 0 0 0 0))
        (local.set $c30 (v128.const i32x4 0 0 0 0)) (local.set $c31 (v128.const i32x4 0 0 0 0))
        (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $aRowB))))
        (local.set $pb (i32.add (local.get $scratch) (i32.shl (i32.mul (local.get $p) (local.get $K)) (i32.const 5))))
        (local.set $k (local.get $K))
        (block $kDone (loop $kLoop
          (br_if $kDone (i32.eqz (local.get $k)))
          (local.set $b0 (v128.load offset=0 (local.get $pb)))
          (local.set $b1 (v128.load offset=16 (local.get $pb)))
          (local.set $s (v128.load32_splat (local.get $pa)))
          (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (v128.load32_splat (i32.add (local.get $pa) (local.get $aRowB))))
          (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (v128.load32_splat (i32.add (local.get $pa) (i32.shl (local.get $aRowB) (i32.const 1)))))
          (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (v128.load32_splat (i32.add (local.get $pa) (i32.mul (local.get $aRowB) (i32.const 3)))))
          (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $pa (i32.add (local.get $pa) (local.get $aStep)))
          (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
          (local.set $k (i32.sub (local.get $k) (i32.const 1)))
          (br $kLoop)))
        (local.set $n (i32.sub (local.get $w) (i32.shl (local.get $p) (i32.const 3))))
        (local.set $pc (i32.add (local.get $c)
          (i32.shl (i32.add (i32.mul (local.get $i) (local.get $P)) (i32.add (local.get $j0) (i32.shl (local.get $p) (i32.const 3)))) (i32.const 2))))
        (call $store8 (local.get $pc) (local.get $n) (local.get $c00) (local.get $c01) (local.get $add))
        (local.set $pc (i32.add (local.get $pc) (local.get $PB)))
        (call $store8 (local.get $pc) (local.get $n) (local.get $c10) (local.get $c11) (local.get $add))
        (local.set $pc (i32.add (local.get $pc) (local.get $PB)))
        (call $store8 (local.get $pc) (local.get $n) (local.get $c20) (local.get $c21) (local.get $add))
        (local.set $pc (i32.add (local.get $pc) (local.get $PB)))
        (call $store8 (local.get $pc) (local.get $n) (local.get $c30) (local.get $c31) (local.get $add))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $pLoop)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $iLoop)))
    ;; the last M mod 4 rows, one at a time
    (block $rDone (loop $rLoop
      (br_if $rDone (i32.ge_u (local.get $i) (local.get $M)))
      (local.set $p (i32.const 0))
      (block $pDone (loop $pLoop
        (br_if $pDone (i32.ge_s (i32.shl (local.get $p) (i32.const 3)) (local.get $w)))
        (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
        (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $aRowB))))
        (local.set $pb (i32.add (local.get $scratch) (i32.shl (i32.mul (local.get $p) (local.get $K)) (i32.const 5))))
        (local.set $k (local.get $K))
        (block $kDone (loop $kLoop
          (br_if $kDone (i32.eqz (local.get $k)))
          (local.set $s (v128.load32_splat (local.get $pa)))
          (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $s) (v128.load offset=0 (local.get $pb)))))
          (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $s) (v128.load offset=16 (local.get $pb)))))
          (local.set $pa (i32.add (local.get $pa) (local.get $aStep)))
          (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
          (local.set $k (i32.sub (local.get $k) (i32.const 1)))
          (br $kLoop)))
        (local.set $pc (i32.add (local.get $c)
          (i32.shl (i32.add (i32.mul (local.get $i) (local.get $P)) (i32.add (local.get $j0) (i32.shl (local.get $p) (i32.const 3)))) (i32.const 2))))
        (call $store8 (local.get $pc) (i32.sub (local.get $w) (i32.shl (local.get $p) (i32.const 3))) (local.get $c00) (local.get $c01)
          (local.get $add))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $pLoop)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rLoop)))
  )

  ;; dst[n, c, r] = src[n, r, c] for N items of R x C floats (b of a·bᵀ made row-major for matmul)
  (func (export "transpose")
    (param $src i32) (param $dst i32) (param $N i32) (param $R i32) (param $C i32)
    (local $n i32) (local $r i32) (local $c i32) (local $ps i32) (local $pd i32) (local $item i32)
    (local.set $item (i32.shl (i32.mul (local.get $R) (local.get $C)) (i32.const 2)))
    (local.set $n (i32.const 0))
    (block $nDone
      (loop $nLoop
        (br_if $nDone (i32.ge_u (local.get $n) (local.get $N)))
        (local.set $r (i32.const 0))
        (block $rDone
          (loop $rLoop
            (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
            (local.set $ps
              (i32.add (i32.add (local.get $src) (i32.mul (local.get $n) (local.get $item)))
                (i32.shl (i32.mul (local.get $r) (local.get $C)) (i32.const 2))))
            (local.set $pd
              (i32.add (i32.add (local.get $dst) (i32.mul (local.get $n) (local.get $item)))
                (i32.shl (local.get $r) (i32.const 2))))
            (local.set $c (local.get $C))
            (block $cDone
              (loop $cLoop
                (br_if $cDone (i32.eqz (local.get $c)))
                (f32.store (local.get $pd) (f32.load (local.get $ps)))
                (local.set $ps (i32.add (local.get $ps) (i32.const 4)))
                (local.set $pd (i32.add (local.get $pd) (i32.shl (local.get $R) (i32.const 2))))
                (local.set $c (i32.sub (local.get $c) (i32.const 1)))
                (br $cLoop)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $rLoop)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $nLoop))))

;; Attention's probabilities: out[r] = softmax(scale * x[r] + bias row) for R rows of S scores, rows first … first + R
  ;; of the whole [B, KV, G, T, S] (first: this block's first row; perB = KV * G * T rows per batch item), the bias
  ;; [B, T, S] additive (0 where a query may look, -1e9 where not; pointer 0: none) shared by the heads of a batch item.
  ;; The masked columns at the end of a row (a causal mask's future) are neither scaled nor exponentiated: their
  ;; probability is 0, as e^(-1e9 - max) is in float32. A row masked everywhere is computed whole, as tfjs would.
  (func (export "attn_softmax")
    (param $x i32) (param $bias i32) (param $out i32) (param $first i32) (param $R i32) (param $S i32)
    (param $scale f32) (param $T i32) (param $perB i32)
    (local $r i32) (local $row i32) (local $j i32) (local $n i32) (local $n4 i32) (local $xr i32) (local $orow i32)
    (local $br i32) (local $vs v128) (local $mz v128) (local $z v128) (local $m f32) (local $inv f32) (local $o i32)
    (local $cut v128)
    (local.set $vs (f32x4.splat (local.get $scale)))
    (local.set $cut (f32x4.splat (f32.const -1e8)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $row (i32.add (local.get $first) (local.get $r)))
        (local.set $xr (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $S)) (i32.const 2))))
        (local.set $orow (i32.add (local.get $out) (i32.shl (i32.mul (local.get $r) (local.get $S)) (i32.const 2))))
        (local.set $n (local.get $S))
        (if (local.get $bias)
          (then
            ;; bias row (b, t): b = row / perB, t = row mod T
            (local.set $br (i32.add (local.get $bias) (i32.shl (i32.mul (i32.add
              (i32.mul (i32.div_u (local.get $row) (local.get $perB)) (local.get $T))
              (i32.rem_u (local.get $row) (local.get $T))) (local.get $S)) (i32.const 2))))
            ;; n = 1 + the last column not masked: back over whole masked vectors, then one column at a time
            (block $vDone
              (loop $vScan
                (br_if $vDone (i32.lt_u (local.get $n) (i32.const 4)))
                (br_if $vDone (v128.any_true (f32x4.gt (v128.load (i32.sub (i32.add (local.get $br)
                  (i32.shl (local.get $n) (i32.const 2))) (i32.const 16))) (local.get $cut))))
                (local.set $n (i32.sub (local.get $n) (i32.const 4)))
                (br $vScan)))
            (block $scanDone
              (loop $scan
                (br_if $scanDone (i32.eqz (local.get $n)))
                (br_if $scanDone (f32.gt (f32.load (i32.sub (i32.add (local.get $br) (i32.shl (local.get $n) (i32.const 2))) (i32.const 4)))
                  (f32.const -1e8)))
                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                (br $scan)))
            (if (i32.eqz (local.get $n)) (then (local.set $n (local.get $S))))))
        (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
        ;; z = scale * x (+ bias) into out, and m = max z
        (local.set $mz (v128.const f32x4 -inf -inf -inf -inf))
        (local.set $m (f32.const -inf))
        (local.set $j (i32.const 0))
        (block $z4Done
          (loop $z4Loop
            (br_if $z4Done (i32.ge_u (local.get $j) (local.get $n4)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (local.set $z (f32x4.mul (v128.load (i32.add (local.get $xr) (local.get $o))) (local.get $vs)))
            (if (local.get $bias)
              (then (local.set $z (f32x4.add (local.get $z) (v128.load (i32.add (local.get $br) (local.get $o)))))))
            (v128.store (i32.add (local.get $orow) (local.get $o)) (local.get $z))
            (local.set $mz (f32x4.pmax (local.get $mz) (local.get $z)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $z4Loop)))
        (block $z1Done
          (loop $z1Loop
            (br_if $z1Done (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (local.set $inv (f32.mul (f32.load (i32.add (local.get $xr) (local.get $o))) (local.get $scale)))
            (if (local.get $bias)
              (then (local.set $inv (f32.add (local.get $inv) (f32.load (i32.add (local.get $br) (local.get $o)))))))
            (f32.store (i32.add (local.get $orow) (local.get $o)) (local.get $inv))
            (local.set $m (f32.max (local.get $m) (local.get $inv)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $z1Loop)))
        (local.set $m (f32.max (local.get $m) (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mz)) (f32x4.extract_lane 1 (local.get $mz)))
          (f32.max (f32x4.extract_lane 2 (local.get $mz)) (f32x4.extract_lane 3 (local.get $mz))))))
        ;; e^(z − m) and their sum in one sweep, then · 1 / sum; 0 past n
        (local.set $inv (f32.div (f32.const 1) (call $exp_to (local.get $orow) (local.get $orow) (local.get $n) (local.get $m))))
        (local.set $mz (f32x4.splat (local.get $inv)))
        (local.set $j (i32.const 0))
        (block $n4Done
          (loop $n4Loop
            (br_if $n4Done (i32.ge_u (local.get $j) (local.get $n4)))
            (local.set $o (i32.add (local.get $orow) (i32.shl (local.get $j) (i32.const 2))))
            (v128.store (local.get $o) (f32x4.mul (v128.load (local.get $o)) (local.get $mz)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $n4Loop)))
        (block $n1Done
          (loop $n1Loop
            (br_if $n1Done (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $o (i32.add (local.get $orow) (i32.shl (local.get $j) (i32.const 2))))
            (f32.store (local.get $o) (f32.mul (f32.load (local.get $o)) (local.get $inv)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $n1Loop)))
        ;; the masked end: 0, by whole vectors once aligned
        (block $f1Done
          (loop $f1Loop
            (br_if $f1Done (i32.ge_u (local.get $j) (local.get $S)))
            (br_if $f1Done (i32.eqz (i32.and (local.get $j) (i32.const 3))))
            (f32.store (i32.add (local.get $orow) (i32.shl (local.get $j) (i32.const 2))) (f32.const 0))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $f1Loop)))
        (block $f4Done
          (loop $f4Loop
            (br_if $f4Done (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $S)))
            (v128.store (i32.add (local.get $orow) (i32.shl (local.get $j) (i32.const 2))) (v128.const i32x4 0 0 0 0))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $f4Loop)))
        (block $f0Done
          (loop $f0Loop
            (br_if $f0Done (i32.ge_u (local.get $j) (local.get $S)))
            (f32.store (i32.add (local.get $orow) (i32.shl (local.get $j) (i32.const 2))) (f32.const 0))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $f0Loop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; out[r, s] = scale * p[r, s] * (dp[r, s] - sum_s' p[r, s'] * dp[r, s']) for R rows of S values: the gradient of
  ;; softmax(scale * z) with respect to z, from the softmax's output p and its incoming gradient dp.
  (func (export "softmax_grad")
    (param $p i32) (param $dp i32) (param $out i32) (param $R i32) (param $S i32) (param $scale f32)
    (local $r i32) (local $j i32) (local $S4 i32) (local $row i32) (local $acc v128) (local $dot f32) (local $vd v128)
    (local $vs v128) (local $o i32)
    (local.set $S4 (i32.and (local.get $S) (i32.const -4)))
    (local.set $vs (f32x4.splat (local.get $scale)))
    (local.set $r (i32.const 0))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $row (i32.shl (i32.mul (local.get $r) (local.get $S)) (i32.const 2)))
        ;; the row's dot product p . dp
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $d4Done
          (loop $d4Loop
            (br_if $d4Done (i32.ge_u (local.get $j) (local.get $S4)))
            (local.set $o (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $o)))
                (v128.load (i32.add (local.get $dp) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $d4Loop)))
        (local.set $dot
          (f32.add
            (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
            (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc)))))
        (block $d1Done
          (loop $d1Loop
            (br_if $d1Done (i32.ge_u (local.get $j) (local.get $S)))
            (local.set $o (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $dot (f32.add (local.get $dot)
              (f32.mul (f32.load (i32.add (local.get $p) (local.get $o)))
                (f32.load (i32.add (local.get $dp) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $d1Loop)))
        ;; out = scale * p * (dp - dot)
        (local.set $vd (f32x4.splat (local.get $dot)))
        (local.set $j (i32.const 0))
        (block $w4Done
          (loop $w4Loop
            (br_if $w4Done (i32.ge_u (local.get $j) (local.get $S4)))
            (local.set $o (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (v128.store (i32.add (local.get $out) (local.get $o))
              (f32x4.mul (local.get $vs)
                (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $o)))
                  (f32x4.sub (v128.load (i32.add (local.get $dp) (local.get $o))) (local.get $vd)))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $w4Loop)))
        (block $w1Done
          (loop $w1Loop
            (br_if $w1Done (i32.ge_u (local.get $j) (local.get $S)))
            (local.set $o (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (f32.store (i32.add (local.get $out) (local.get $o))
              (f32.mul (local.get $scale)
                (f32.mul (f32.load (i32.add (local.get $p) (local.get $o)))
                  (f32.sub (f32.load (i32.add (local.get $dp) (local.get $o))) (local.get $dot)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $w1Loop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

;; The gradient of the mean cross-entropy with respect to the logits, from the softmax p [R, S], the per-row scale s
  ;; [R] (the incoming gradient over the count of trained rows; 0 on ignored rows) and the target column of each row
  ;; t [R] (i32): out[r, j] = s[r] * (p[r, j] - (j == t[r])), one sweep (tfjs: a multiply, a dense scatter and an add).
  (func (export "ce_grad")
    (param $p i32) (param $s i32) (param $t i32) (param $out i32) (param $R i32) (param $S i32)
    (local $r i32) (local $j i32) (local $S4 i32) (local $row i32) (local $sc f32) (local $vs v128) (local $o i32)
    (local.set $S4 (i32.and (local.get $S) (i32.const -4)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $row (i32.shl (i32.mul (local.get $r) (local.get $S)) (i32.const 2)))
        (local.set $sc (f32.load (i32.add (local.get $s) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $vs (f32x4.splat (local.get $sc)))
        (local.set $j (i32.const 0))
        (block $v4Done
          (loop $v4Loop
            (br_if $v4Done (i32.ge_u (local.get $j) (local.get $S4)))
            (local.set $o (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (v128.store (i32.add (local.get $out) (local.get $o))
              (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $o))) (local.get $vs)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $v4Loop)))
        (block $v1Done
          (loop $v1Loop
            (br_if $v1Done (i32.ge_u (local.get $j) (local.get $S)))
            (local.set $o (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
            (f32.store (i32.add (local.get $out) (local.get $o))
              (f32.mul (f32.load (i32.add (local.get $p) (local.get $o))) (local.get $sc)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $v1Loop)))
        (local.set $o (i32.add (i32.add (local.get $out) (local.get $row))
          (i32.shl (i32.load (i32.add (local.get $t) (i32.shl (local.get $r) (i32.const 2)))) (i32.const 2))))
        (f32.store (local.get $o) (f32.sub (f32.load (local.get $o)) (local.get $sc)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

;; The cross-entropy's forward pass, per row of the logits z [R, S] (S > 0) against the target column t[r] (i32):
  ;; the softmax p [R, S], e^(z − max z) ($exp_n) times 1 / their sum, and out[r, 0..3] = [max z, max p (= 1 / the
  ;; sum: the largest logit's e^0 is 1 exactly), z at the target, 1 if the first largest logit is the target (tfjs's
  ;; argMax takes the first)]. The loss needs lse = max z − log(max p) and the backward pass p, so one sweep per row
  ;; replaces tfjs's softmax (a max, a subtract, an exp, a sum and a divide) and two Max, an ArgMax and a Gather.
  (func (export "ce_softmax")
    (param $z i32) (param $t i32) (param $p i32) (param $out i32) (param $R i32) (param $S i32)
    (local $r i32) (local $j i32) (local $S4 i32) (local $zr i32) (local $pr i32) (local $mz v128)
    (local $acc v128) (local $m f32) (local $inv f32) (local $tr i32) (local $o i32)
    (local.set $S4 (i32.and (local.get $S) (i32.const -4)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $zr (i32.add (local.get $z) (i32.shl (i32.mul (local.get $r) (local.get $S)) (i32.const 2))))
        (local.set $pr (i32.add (local.get $p) (i32.shl (i32.mul (local.get $r) (local.get $S)) (i32.const 2))))
        ;; m = max z
        (local.set $mz (v128.load32_splat (local.get $zr)))
        (local.set $j (i32.const 0))
        (block $m4Done
          (loop $m4Loop
            (br_if $m4Done (i32.ge_u (local.get $j) (local.get $S4)))
            (local.set $mz (f32x4.pmax (local.get $mz) (v128.load (i32.add (local.get $zr) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $m4Loop)))
        (local.set $m (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mz)) (f32x4.extract_lane 1 (local.get $mz)))
          (f32.max (f32x4.extract_lane 2 (local.get $mz)) (f32x4.extract_lane 3 (local.get $mz)))))
        (block $m1Done
          (loop $m1Loop
            (br_if $m1Done (i32.ge_u (local.get $j) (local.get $S)))
            (local.set $m (f32.max (local.get $m) (f32.load (i32.add (local.get $zr) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $m1Loop)))
        ;; p = e^(z − m), times 1 / Σ p
        (local.set $inv (f32.div (f32.const 1) (call $exp_to (local.get $zr) (local.get $pr) (local.get $S) (local.get $m))))
        (local.set $acc (f32x4.splat (local.get $inv)))
        (local.set $j (i32.const 0))
        (block $n4Done
          (loop $n4Loop
            (br_if $n4Done (i32.ge_u (local.get $j) (local.get $S4)))
            (local.set $o (i32.add (local.get $pr) (i32.shl (local.get $j) (i32.const 2))))
            (v128.store (local.get $o) (f32x4.mul (v128.load (local.get $o)) (local.get $acc)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $n4Loop)))
        (block $n1Done
          (loop $n1Loop
            (br_if $n1Done (i32.ge_u (local.get $j) (local.get $S)))
            (local.set $o (i32.add (local.get $pr) (i32.shl (local.get $j) (i32.const 2))))
            (f32.store (local.get $o) (f32.mul (f32.load (local.get $o)) (local.get $inv)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $n1Loop)))
        ;; the first column holding the largest logit (none when it is NaN: j runs to S)
        (local.set $j (i32.const 0))
        (block $aDone
          (loop $aLoop
            (br_if $aDone (i32.ge_u (local.get $j) (local.get $S)))
            (br_if $aDone (f32.eq (f32.load (i32.add (local.get $zr) (i32.shl (local.get $j) (i32.const 2)))) (local.get $m)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $aLoop)))
        (local.set $tr (i32.load (i32.add (local.get $t) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $o (i32.add (local.get $out) (i32.shl (local.get $r) (i32.const 4))))
        (f32.store offset=0 (local.get $o) (local.get $m))
        (f32.store offset=4 (local.get $o) (local.get $inv))
        (f32.store offset=8 (local.get $o) (f32.load (i32.add (local.get $zr) (i32.shl (local.get $tr) (i32.const 2)))))
        (f32.store offset=12 (local.get $o) (f32.convert_i32_u (i32.eq (local.get $j) (local.get $tr))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; dst row i = src row idx[i] (i32), for n rows of D floats: the lookups in the frozen embedding and RoPE tables
  ;; (tfjs-backend-wasm's GatherV2 took ~12 ms for 512 rows of 768 here). The caller checks every index.
  (func (export "gather_rows") (param $src i32) (param $idx i32) (param $dst i32) (param $n i32) (param $D i32)
    (local $i i32) (local $j i32) (local $D4 i32) (local $from i32) (local $to i32)
    (local.set $D4 (i32.and (local.get $D) (i32.const -4)))
    (block $iDone
      (loop $iLoop
        (br_if $iDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $from (i32.add (local.get $src) (i32.shl (i32.mul
          (i32.load (i32.add (local.get $idx) (i32.shl (local.get $i) (i32.const 2)))) (local.get $D)) (i32.const 2))))
        (local.set $to (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $i) (local.get $D)) (i32.const 2))))
        (local.set $j (i32.const 0))
        (block $v4Done
          (loop $v4Loop
            (br_if $v4Done (i32.ge_u (local.get $j) (local.get $D4)))
            (v128.store (i32.add (local.get $to) (i32.shl (local.get $j) (i32.const 2)))
              (v128.load (i32.add (local.get $from) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $v4Loop)))
        (block $v1Done
          (loop $v1Loop
            (br_if $v1Done (i32.ge_u (local.get $j) (local.get $D)))
            (f32.store (i32.add (local.get $to) (i32.shl (local.get $j) (i32.const 2)))
              (f32.load (i32.add (local.get $from) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $v1Loop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iLoop))))

  ;; dst = alpha * src, or dst += alpha * src when acc is 1, over n floats (f32x4, then the tail): the scaling and the
  ;; sums of the fused LoRA layer (its path's scale, a product added to another).
  (func (export "axpy") (param $src i32) (param $dst i32) (param $n i32) (param $alpha f32) (param $acc i32)
    (local $i i32) (local $n4 i32) (local $av v128) (local $v v128) (local $x f32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (local.set $av (f32x4.splat (local.get $alpha)))
    (block $vDone
      (loop $vLoop
        (br_if $vDone (i32.ge_u (local.get $i) (local.get $n4)))
        (local.set $v (f32x4.mul (local.get $av)
          (v128.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))))
        (if (local.get $acc)
          (then (local.set $v (f32x4.add (local.get $v)
            (v128.load (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))))))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vLoop)))
    (block $done
      (loop $loop
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (f32.mul (local.get $alpha) (f32.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))))
        (if (local.get $acc)
          (then (local.set $x (f32.add (local.get $x)
            (f32.load (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))))))))
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $x))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $loop))))

  ;; RoPE with the head transpose, for token rows first … first + R of B·T (T tokens per batch item), nh heads of hd:
  ;;   dir 0 (mode 0-2): out[b, h, t, :] = rot(x[b·T + t, h·hd …]), x [B·T, nh·hd] → out [B, nh, T, hd];
  ;;   dir 1 (mode 3-5): out[b·T + t, h·hd …] = rot⁻¹(x[b, h, t, :]), back to token rows (the gradient).
  ;; rot turns each pair of dimensions by row r's angles (cos, sin: hd / 2 floats per row at 4 · r · hd / 2 bytes):
  ;; mode mod 3 = 0: none (the transpose alone); 1: HF rotate_half (i pairs with i + hd / 2); 2: interleaved (2i with
  ;; 2i + 1): a' = a·c − b·s, b' = b·c + a·s. rot⁻¹ is rot with −s (a rotation's transpose). The pairs of 'half' run
  ;; four at a time when hd / 2 is a multiple of 4.
  (func (export "rope_heads") (param $x i32) (param $cos i32) (param $sin i32) (param $out i32) (param $first i32)
    (param $R i32) (param $nh i32) (param $hd i32) (param $T i32) (param $mode i32)
    (local $r i32) (local $end i32) (local $b i32) (local $t i32) (local $h i32) (local $i i32) (local $half i32)
    (local $rot i32) (local $inv i32) (local $tok i32) (local $hm i32) (local $src i32) (local $dst i32)
    (local $cr i32) (local $sr i32) (local $c f32) (local $s f32) (local $a f32) (local $bb f32)
    (local $cv v128) (local $sv v128) (local $av v128) (local $bv v128) (local $hb i32)
    (local.set $half (i32.shr_u (local.get $hd) (i32.const 1)))
    (local.set $inv (i32.ge_u (local.get $mode) (i32.const 3)))
    (local.set $rot (i32.rem_u (local.get $mode) (i32.const 3)))
    (local.set $hb (i32.shl (local.get $half) (i32.const 2)))
    (local.set $r (local.get $first))
    (local.set $end (i32.add (local.get $first) (local.get $R)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $end)))
        (local.set $b (i32.div_u (local.get $r) (local.get $T)))
        (local.set $t (i32.sub (local.get $r) (i32.mul (local.get $b) (local.get $T))))
        (local.set $cr (i32.add (local.get $cos) (i32.mul (local.get $r) (local.get $hb))))
        (local.set $sr (i32.add (local.get $sin) (i32.mul (local.get $r) (local.get $hb))))
        (local.set $h (i32.const 0))
        (block $hDone
          (loop $hLoop
            (br_if $hDone (i32.ge_u (local.get $h) (local.get $nh)))
            ;; byte offsets of this head's hd floats in the token-major and the head-major layouts
            (local.set $tok (i32.shl (i32.mul (i32.add (i32.mul (local.get $r) (local.get $nh)) (local.get $h))
              (local.get $hd)) (i32.const 2)))
            (local.set $hm (i32.shl (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $nh))
              (local.get $h)) (local.get $T)) (local.get $t)) (local.get $hd)) (i32.const 2)))
            (if (local.get $inv)
              (then
                (local.set $src (i32.add (local.get $x) (local.get $hm)))
                (local.set $dst (i32.add (local.get $out) (local.get $tok))))
              (else
                (local.set $src (i32.add (local.get $x) (local.get $tok)))
                (local.set $dst (i32.add (local.get $out) (local.get $hm)))))
            (local.set $i (i32.const 0))
            (if (i32.eqz (local.get $rot))
              (then
                ;; the transpose alone: whole vectors, then the hd mod 4 tail
                (block $c4Done
                  (loop $c4Loop
                    (br_if $c4Done (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $hd)))
                    (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
                      (v128.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2)))))
                    (local.set $i (i32.add (local.get $i) (i32.const 4)))
                    (br $c4Loop)))
                (block $cDone
                  (loop $cLoop
                    (br_if $cDone (i32.ge_u (local.get $i) (local.get $hd)))
                    (f32.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
                      (f32.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2)))))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $cLoop))))
              (else
                (if (i32.and (i32.eq (local.get $rot) (i32.const 1))
                      (i32.eqz (i32.and (local.get $half) (i32.const 3))))
                  (then
                    ;; rotate_half, four pairs at a time: a at i, b at i + hd / 2
                    (block $vDone
                      (loop $vLoop
                        (br_if $vDone (i32.ge_u (local.get $i) (local.get $half)))
                        (local.set $cv (v128.load (i32.add (local.get $cr) (i32.shl (local.get $i) (i32.const 2)))))
                        (local.set $sv (v128.load (i32.add (local.get $sr) (i32.shl (local.get $i) (i32.const 2)))))
                        (if (local.get $inv) (then (local.set $sv (f32x4.neg (local.get $sv)))))
                        (local.set $av (v128.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2)))))
                        (local.set $bv (v128.load (i32.add (i32.add (local.get $src) (local.get $hb))
                          (i32.shl (local.get $i) (i32.const 2)))))
                        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
                          (f32x4.sub (f32x4.mul (local.get $av) (local.get $cv))
                            (f32x4.mul (local.get $bv) (local.get $sv))))
                        (v128.store (i32.add (i32.add (local.get $dst) (local.get $hb)) (i32.shl (local.get $i) (i32.const 2)))
                          (f32x4.add (f32x4.mul (local.get $bv) (local.get $cv))
                            (f32x4.mul (local.get $av) (local.get $sv))))
                        (local.set $i (i32.add (local.get $i) (i32.const 4)))
                        (br $vLoop))))
                  (else
                    ;; one pair at a time: (i, i + hd / 2) or (2i, 2i + 1)
                    (block $pDone
                      (loop $pLoop
                        (br_if $pDone (i32.ge_u (local.get $i) (local.get $half)))
                        (local.set $c (f32.load (i32.add (local.get $cr) (i32.shl (local.get $i) (i32.const 2)))))
                        (local.set $s (f32.load (i32.add (local.get $sr) (i32.shl (local.get $i) (i32.const 2)))))
                        (if (local.get $inv) (then (local.set $s (f32.neg (local.get $s)))))
                        (if (i32.eq (local.get $rot) (i32.const 1))
                          (then
                            (local.set $tok (i32.shl (local.get $i) (i32.const 2)))
                            (local.set $hm (i32.add (local.get $tok) (local.get $hb))))
                          (else
                            (local.set $tok (i32.shl (local.get $i) (i32.const 3)))
                            (local.set $hm (i32.add (local.get $tok) (i32.const 4)))))
                        (local.set $a (f32.load (i32.add (local.get $src) (local.get $tok))))
                        (local.set $bb (f32.load (i32.add (local.get $src) (local.get $hm))))
                        (f32.store (i32.add (local.get $dst) (local.get $tok))
                          (f32.sub (f32.mul (local.get $a) (local.get $c)) (f32.mul (local.get $bb) (local.get $s))))
                        (f32.store (i32.add (local.get $dst) (local.get $hm))
                          (f32.add (f32.mul (local.get $bb) (local.get $c)) (f32.mul (local.get $a) (local.get $s))))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br $pLoop)))))))
            (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br $hLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; sum over j < D of a[j] * b[j] (f32x4 lanes, then the D mod 4 tail), for rows of floats at byte offsets a, b
  (func $dot (param $a i32) (param $b i32) (param $D i32) (result f32)
    (local $j i32) (local $D4 i32) (local $acc v128) (local $sum f32)
    (local.set $D4 (i32.and (local.get $D) (i32.const -4)))
    (local.set $acc (v128.const i32x4 0 0 0 0))
    (block $done4
      (loop $loop4
        (br_if $done4 (i32.ge_u (local.get $j) (local.get $D4)))
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (v128.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
            (v128.load (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $loop4)))
    (local.set $sum
      (f32.add
        (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
        (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc)))))
    (block $done1
      (loop $loop1
        (br_if $done1 (i32.ge_u (local.get $j) (local.get $D)))
        (local.set $sum (f32.add (local.get $sum)
          (f32.mul (f32.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
            (f32.load (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $loop1)))
    (local.get $sum))

  ;; RMSNorm of R rows of D values: out = x * r * (w + plusOne), r = 1 / sqrt(mean(x^2) + eps)
  ;; (plusOne 0: Llama's x·w; 1: Gemma's x·(1 + w)).
  (func (export "rmsnorm_fwd")
    (param $x i32) (param $w i32) (param $out i32) (param $R i32) (param $D i32) (param $eps f32) (param $plusOne f32)
    (local $r i32) (local $j i32) (local $row i32) (local $inv f32) (local $o i32)
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $row (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $D)) (i32.const 2))))
        (local.set $inv (f32.div (f32.const 1)
          (f32.sqrt (f32.add
            (f32.div (call $dot (local.get $row) (local.get $row) (local.get $D)) (f32.convert_i32_u (local.get $D)))
            (local.get $eps)))))
        (local.set $o (i32.add (local.get $out) (i32.shl (i32.mul (local.get $r) (local.get $D)) (i32.const 2))))
        (local.set $j (i32.const 0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $D)))
            (f32.store (i32.add (local.get $o) (i32.shl (local.get $j) (i32.const 2)))
              (f32.mul
                (f32.mul (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (local.get $inv))
                (f32.add (f32.load (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2)))) (local.get $plusOne))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; Its input gradient: with r as above and g = dy * (w + plusOne), dx = g * r - x * r^3 * mean(g * x).
  ;; g is formed in dx first (dx and dy may not alias).
  (func (export "rmsnorm_bwd")
    (param $x i32) (param $w i32) (param $dy i32) (param $dx i32) (param $R i32) (param $D i32) (param $eps f32)
    (param $plusOne f32)
    (local $r i32) (local $j i32) (local $off i32) (local $xr i32) (local $gr i32) (local $dyr i32) (local $inv f32)
    (local $m f32) (local $c f32) (local $fD f32)
    (local.set $fD (f32.convert_i32_u (local.get $D)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $off (i32.shl (i32.mul (local.get $r) (local.get $D)) (i32.const 2)))
        (local.set $xr (i32.add (local.get $x) (local.get $off)))
        (local.set $gr (i32.add (local.get $dx) (local.get $off)))
        (local.set $dyr (i32.add (local.get $dy) (local.get $off)))
        (local.set $inv (f32.div (f32.const 1)
          (f32.sqrt (f32.add (f32.div (call $dot (local.get $xr) (local.get $xr) (local.get $D)) (local.get $fD))
            (local.get $eps)))))
        (local.set $j (i32.const 0))
        (block $gDone
          (loop $gLoop
            (br_if $gDone (i32.ge_u (local.get $j) (local.get $D)))
            (f32.store (i32.add (local.get $gr) (i32.shl (local.get $j) (i32.const 2)))
              (f32.mul (f32.load (i32.add (local.get $dyr) (i32.shl (local.get $j) (i32.const 2))))
                (f32.add (f32.load (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2)))) (local.get $plusOne))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $gLoop)))
        (local.set $m (f32.div (call $dot (local.get $gr) (local.get $xr) (local.get $D)) (local.get $fD)))
        (local.set $c (f32.mul (local.get $m) (f32.mul (local.get $inv) (f32.mul (local.get $inv) (local.get $inv)))))
        (local.set $j (i32.const 0))
        (block $dDone
          (loop $dLoop
            (br_if $dDone (i32.ge_u (local.get $j) (local.get $D)))
            (f32.store (i32.add (local.get $gr) (i32.shl (local.get $j) (i32.const 2)))
              (f32.sub
                (f32.mul (f32.load (i32.add (local.get $gr) (i32.shl (local.get $j) (i32.const 2)))) (local.get $inv))
                (f32.mul (f32.load (i32.add (local.get $xr) (i32.shl (local.get $j) (i32.const 2)))) (local.get $c))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $dLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; AdamW over the optimizer's flat vectors of n floats, with the formulas and the order of operations of its plain
  ;; ops (src/train/optimizer.ts, torch's): m' = m + w·(g − m) (small = 1) or g − (g − m)·w, v' = v·b2 + (c2·g)·g,
  ;; p' = p·decay + negStep·(m' / (√v' / bc2 + eps)), written to po, mo and vo (not the inputs). Returns Σ p'²: it is
  ;; finite only if every new weight is finite and below ~1.8e19 in magnitude. Four floats at a time; the last n mod 4
  ;; as one vector whose other lanes are left out of the sum.
  (func (export "adamw")
    (param $p i32) (param $m i32) (param $v i32) (param $g i32) (param $po i32) (param $mo i32) (param $vo i32)
    (param $n i32) (param $w f32) (param $small i32) (param $b2 f32) (param $c2 f32) (param $eps f32)
    (param $decay f32) (param $negStep f32) (param $bc2 f32) (result f32)
    (local $i i32) (local $o i32) (local $t i32) (local $vw v128) (local $vb2 v128) (local $vc2 v128)
    (local $veps v128) (local $vdecay v128) (local $vstep v128) (local $vbc2 v128) (local $gv v128) (local $mv v128)
    (local $vv v128) (local $pv v128) (local $mask v128) (local $acc v128)
    (local.set $vw (f32x4.splat (local.get $w)))
    (local.set $vb2 (f32x4.splat (local.get $b2)))
    (local.set $vc2 (f32x4.splat (local.get $c2)))
    (local.set $veps (f32x4.splat (local.get $eps)))
    (local.set $vdecay (f32x4.splat (local.get $decay)))
    (local.set $vstep (f32x4.splat (local.get $negStep)))
    (local.set $vbc2 (f32x4.splat (local.get $bc2)))
    (local.set $mask (v128.const i32x4 -1 -1 -1 -1))
    (block $done
      (loop $loop
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $t (i32.sub (local.get $n) (local.get $i)))
        (if (i32.ge_u (local.get $t) (i32.const 4))
          (then
            (local.set $gv (v128.load (i32.add (local.get $g) (local.get $o))))
            (local.set $mv (v128.load (i32.add (local.get $m) (local.get $o))))
            (local.set $vv (v128.load (i32.add (local.get $v) (local.get $o))))
            (local.set $pv (v128.load (i32.add (local.get $p) (local.get $o)))))
          (else
            (local.set $gv (call $load_tail (i32.add (local.get $g) (local.get $o)) (local.get $t)))
            (local.set $mv (call $load_tail (i32.add (local.get $m) (local.get $o)) (local.get $t)))
            (local.set $vv (call $load_tail (i32.add (local.get $v) (local.get $o)) (local.get $t)))
            (local.set $pv (call $load_tail (i32.add (local.get $p) (local.get $o)) (local.get $t)))
            (local.set $mask (i32x4.lt_s (v128.const i32x4 0 1 2 3) (i32x4.splat (local.get $t))))))
        (if (local.get $small)
          (then (local.set $mv (f32x4.add (local.get $mv)
            (f32x4.mul (local.get $vw) (f32x4.sub (local.get $gv) (local.get $mv))))))
          (else (local.set $mv (f32x4.sub (local.get $gv)
            (f32x4.mul (f32x4.sub (local.get $gv) (local.get $mv)) (local.get $vw))))))
        (local.set $vv (f32x4.add (f32x4.mul (local.get $vv) (local.get $vb2))
          (f32x4.mul (f32x4.mul (local.get $vc2) (local.get $gv)) (local.get $gv))))
        (local.set $pv (f32x4.add (f32x4.mul (local.get $pv) (local.get $vdecay))
          (f32x4.mul (local.get $vstep) (f32x4.div (local.get $mv)
            (f32x4.add (f32x4.div (f32x4.sqrt (local.get $vv)) (local.get $vbc2)) (local.get $veps))))))
        (local.set $acc (f32x4.add (local.get $acc) (v128.and (f32x4.mul (local.get $pv) (local.get $pv)) (local.get $mask))))
        (if (i32.ge_u (local.get $t) (i32.const 4))
          (then
            (v128.store (i32.add (local.get $po) (local.get $o)) (local.get $pv))
            (v128.store (i32.add (local.get $mo) (local.get $o)) (local.get $mv))
            (v128.store (i32.add (local.get $vo) (local.get $o)) (local.get $vv)))
          (else
            (call $store_tail (i32.add (local.get $po) (local.get $o)) (local.get $t) (local.get $pv))
            (call $store_tail (i32.add (local.get $mo) (local.get $o)) (local.get $t) (local.get $mv))
            (call $store_tail (i32.add (local.get $vo) (local.get $o)) (local.get $t) (local.get $vv))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $loop)))
    (call $hsum (local.get $acc)))

  ;; the sum of a vector's four lanes
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; sum over j < D of a[j] (f32x4 lanes, then the D mod 4 tail), for a row of floats at byte offset a
  (func $sum (param $a i32) (param $D i32) (result f32)
    (local $j i32) (local $D4 i32) (local $acc v128) (local $s f32)
    (local.set $D4 (i32.and (local.get $D) (i32.const -4)))
    (block $done4
      (loop $loop4
        (br_if $done4 (i32.ge_u (local.get $j) (local.get $D4)))
        (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $loop4)))
    (local.set $s (call $hsum (local.get $acc)))
    (block $done1
      (loop $loop1
        (br_if $done1 (i32.ge_u (local.get $j) (local.get $D)))
        (local.set $s (f32.add (local.get $s) (f32.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $loop1)))
    (local.get $s))

  ;; LayerNorm (torch.nn.LayerNorm over the last axis, biased variance) of R rows of D values:
  ;; out = (x − mean) · r · w + b, r = 1 / sqrt(var + eps). The mean is taken in two steps, m = Σx / D and then
  ;; δ = Σ(x − m) / D from the second sweep (x − m is exact near m, so a row far from zero keeps its precision);
  ;; var = Σ(x − m)² / D − δ², and x − mean is formed as (x − m) − δ. Three sweeps per row.
  (func (export "layernorm_fwd")
    (param $x i32) (param $w i32) (param $b i32) (param $out i32) (param $R i32) (param $D i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $D4 i32) (local $xr i32) (local $or i32) (local $o i32)
    (local $fD f32) (local $m f32) (local $d f32) (local $s1 f32) (local $s2 f32) (local $inv f32) (local $v f32)
    (local $vm v128) (local $vd v128) (local $vi v128) (local $vx v128) (local $a1 v128) (local $a2 v128)
    (local.set $D4 (i32.and (local.get $D) (i32.const -4)))
    (local.set $fD (f32.convert_i32_u (local.get $D)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $xr (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $D)) (i32.const 2))))
        (local.set $or (i32.add (local.get $out) (i32.shl (i32.mul (local.get $r) (local.get $D)) (i32.const 2))))
        (local.set $m (f32.div (call $sum (local.get $xr) (local.get $D)) (local.get $fD)))
        ;; Σ(x − m) and Σ(x − m)²
        (local.set $vm (f32x4.splat (local.get $m)))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $s4Done
          (loop $s4Loop
            (br_if $s4Done (i32.ge_u (local.get $j) (local.get $D4)))
            (local.set $vx (f32x4.sub (v128.load (i32.add (local.get $xr) (i32.shl (local.get $j) (i32.const 2))))
              (local.get $vm)))
            (local.set $a1 (f32x4.add (local.get $a1) (local.get $vx)))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $vx) (local.get $vx))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $s4Loop)))
        (local.set $s1 (call $hsum (local.get $a1)))
        (local.set $s2 (call $hsum (local.get $a2)))
        (block $s1Done
          (loop $s1Loop
            (br_if $s1Done (i32.ge_u (local.get $j) (local.get $D)))
            (local.set $v (f32.sub (f32.load (i32.add (local.get $xr) (i32.shl (local.get $j) (i32.const 2))))
              (local.get $m)))
            (local.set $s1 (f32.add (local.get $s1) (local.get $v)))
            (local.set $s2 (f32.add (local.get $s2) (f32.mul (local.get $v) (local.get $v))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $s1Loop)))
        (local.set $d (f32.div (local.get $s1) (local.get $fD)))
        (local.set $inv (f32.div (f32.const 1) (f32.sqrt (f32.add (local.get $eps)
          (f32.max (f32.const 0) (f32.sub (f32.div (local.get $s2) (local.get $fD)) (f32.mul (local.get $d) (local.get $d))))))))
        ;; out = ((x − m) − δ) · r · w + b
        (local.set $vd (f32x4.splat (local.get $d)))
        (local.set $vi (f32x4.splat (local.get $inv)))
        (local.set $j (i32.const 0))
        (block $w4Done
          (loop $w4Loop
            (br_if $w4Done (i32.ge_u (local.get $j) (local.get $D4)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (v128.store (i32.add (local.get $or) (local.get $o))
              (f32x4.add
                (f32x4.mul
                  (f32x4.mul
                    (f32x4.sub (f32x4.sub (v128.load (i32.add (local.get $xr) (local.get $o))) (local.get $vm)) (local.get $vd))
                    (local.get $vi))
                  (v128.load (i32.add (local.get $w) (local.get $o))))
                (v128.load (i32.add (local.get $b) (local.get $o)))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $w4Loop)))
        (block $w1Done
          (loop $w1Loop
            (br_if $w1Done (i32.ge_u (local.get $j) (local.get $D)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (f32.store (i32.add (local.get $or) (local.get $o))
              (f32.add
                (f32.mul
                  (f32.mul
                    (f32.sub (f32.sub (f32.load (i32.add (local.get $xr) (local.get $o))) (local.get $m)) (local.get $d))
                    (local.get $inv))
                  (f32.load (i32.add (local.get $w) (local.get $o))))
                (f32.load (i32.add (local.get $b) (local.get $o)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $w1Loop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; Its input gradient (w frozen: no weight gradients), from x alone (mean and r recomputed as in layernorm_fwd):
  ;; with xhat = (x − mean) · r and g = dy · w, dx = r · (g − mean(g) − xhat · mean(g · xhat)). The second sweep
  ;; gathers Σ(x − m), Σ(x − m)², Σg and Σg · (x − m) together; Σg · (x − mean) = Σg · (x − m) − δ · Σg. Three sweeps.
  (func (export "layernorm_bwd")
    (param $x i32) (param $w i32) (param $dy i32) (param $dx i32) (param $R i32) (param $D i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $D4 i32) (local $off i32) (local $xr i32) (local $dyr i32) (local $dxr i32)
    (local $o i32)
    (local $fD f32) (local $m f32) (local $d f32) (local $s1 f32) (local $s2 f32) (local $sg f32) (local $sgx f32)
    (local $inv f32) (local $v f32) (local $g f32) (local $cb f32) (local $cc f32)
    (local $vm v128) (local $vd v128) (local $vx v128) (local $vg v128)
    (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $va v128) (local $vb v128) (local $vc v128)
    (local.set $D4 (i32.and (local.get $D) (i32.const -4)))
    (local.set $fD (f32.convert_i32_u (local.get $D)))
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $R)))
        (local.set $off (i32.shl (i32.mul (local.get $r) (local.get $D)) (i32.const 2)))
        (local.set $xr (i32.add (local.get $x) (local.get $off)))
        (local.set $dyr (i32.add (local.get $dy) (local.get $off)))
        (local.set $dxr (i32.add (local.get $dx) (local.get $off)))
        (local.set $m (f32.div (call $sum (local.get $xr) (local.get $D)) (local.get $fD)))
        (local.set $vm (f32x4.splat (local.get $m)))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $a4 (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $s4Done
          (loop $s4Loop
            (br_if $s4Done (i32.ge_u (local.get $j) (local.get $D4)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (local.set $vx (f32x4.sub (v128.load (i32.add (local.get $xr) (local.get $o))) (local.get $vm)))
            (local.set $vg (f32x4.mul (v128.load (i32.add (local.get $dyr) (local.get $o)))
              (v128.load (i32.add (local.get $w) (local.get $o)))))
            (local.set $a1 (f32x4.add (local.get $a1) (local.get $vx)))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $vx) (local.get $vx))))
            (local.set $a3 (f32x4.add (local.get $a3) (local.get $vg)))
            (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $vg) (local.get $vx))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $s4Loop)))
        (local.set $s1 (call $hsum (local.get $a1)))
        (local.set $s2 (call $hsum (local.get $a2)))
        (local.set $sg (call $hsum (local.get $a3)))
        (local.set $sgx (call $hsum (local.get $a4)))
        (block $s1Done
          (loop $s1Loop
            (br_if $s1Done (i32.ge_u (local.get $j) (local.get $D)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (local.set $v (f32.sub (f32.load (i32.add (local.get $xr) (local.get $o))) (local.get $m)))
            (local.set $g (f32.mul (f32.load (i32.add (local.get $dyr) (local.get $o)))
              (f32.load (i32.add (local.get $w) (local.get $o)))))
            (local.set $s1 (f32.add (local.get $s1) (local.get $v)))
            (local.set $s2 (f32.add (local.get $s2) (f32.mul (local.get $v) (local.get $v))))
            (local.set $sg (f32.add (local.get $sg) (local.get $g)))
            (local.set $sgx (f32.add (local.get $sgx) (f32.mul (local.get $g) (local.get $v))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $s1Loop)))
        (local.set $d (f32.div (local.get $s1) (local.get $fD)))
        (local.set $inv (f32.div (f32.const 1) (f32.sqrt (f32.add (local.get $eps)
          (f32.max (f32.const 0) (f32.sub (f32.div (local.get $s2) (local.get $fD)) (f32.mul (local.get $d) (local.get $d))))))))
        ;; dx = r · g − r · mean(g) − (x − mean) · r² · mean(g · xhat), mean(g · xhat) = r · Σg · (x − mean) / D
        (local.set $cb (f32.mul (local.get $inv) (f32.div (local.get $sg) (local.get $fD))))
        (local.set $cc (f32.mul (f32.mul (local.get $inv) (f32.mul (local.get $inv) (local.get $inv)))
          (f32.div (f32.sub (local.get $sgx) (f32.mul (local.get $d) (local.get $sg))) (local.get $fD))))
        (local.set $vd (f32x4.splat (local.get $d)))
        (local.set $va (f32x4.splat (local.get $inv)))
        (local.set $vb (f32x4.splat (local.get $cb)))
        (local.set $vc (f32x4.splat (local.get $cc)))
        (local.set $j (i32.const 0))
        (block $w4Done
          (loop $w4Loop
            (br_if $w4Done (i32.ge_u (local.get $j) (local.get $D4)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (v128.store (i32.add (local.get $dxr) (local.get $o))
              (f32x4.sub
                (f32x4.sub
                  (f32x4.mul (local.get $va) (f32x4.mul (v128.load (i32.add (local.get $dyr) (local.get $o)))
                    (v128.load (i32.add (local.get $w) (local.get $o)))))
                  (local.get $vb))
                (f32x4.mul (local.get $vc)
                  (f32x4.sub (f32x4.sub (v128.load (i32.add (local.get $xr) (local.get $o))) (local.get $vm)) (local.get $vd)))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $w4Loop)))
        (block $w1Done
          (loop $w1Loop
            (br_if $w1Done (i32.ge_u (local.get $j) (local.get $D)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (f32.store (i32.add (local.get $dxr) (local.get $o))
              (f32.sub
                (f32.sub
                  (f32.mul (local.get $inv) (f32.mul (f32.load (i32.add (local.get $dyr) (local.get $o)))
                    (f32.load (i32.add (local.get $w) (local.get $o)))))
                  (local.get $cb))
                (f32.mul (local.get $cc)
                  (f32.sub (f32.sub (f32.load (i32.add (local.get $xr) (local.get $o))) (local.get $m)) (local.get $d)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $w1Loop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop))))

  ;; the first n (< 4) floats at p in the low lanes, zeros above; and back (the tails of the element-wise kernels)
  (func $load_tail (param $p i32) (param $n i32) (result v128)
    (local $v v128)
    (if (i32.gt_u (local.get $n) (i32.const 0))
      (then (local.set $v (f32x4.replace_lane 0 (local.get $v) (f32.load offset=0 (local.get $p))))))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then (local.set $v (f32x4.replace_lane 1 (local.get $v) (f32.load offset=4 (local.get $p))))))
    (if (i32.gt_u (local.get $n) (i32.const 2))
      (then (local.set $v (f32x4.replace_lane 2 (local.get $v) (f32.load offset=8 (local.get $p))))))
    (local.get $v))
  (func $store_tail (param $p i32) (param $n i32) (param $v v128)
    (if (i32.gt_u (local.get $n) (i32.const 0))
      (then (f32.store offset=0 (local.get $p) (f32x4.extract_lane 0 (local.get $v)))))
    (if (i32.gt_u (local.get $n) (i32.const 1))
      (then (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))))
    (if (i32.gt_u (local.get $n) (i32.const 2))
      (then (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))))

  ;; The constants of the exp and gelu kernels, as globals that their functions read into locals before their loops.
  ;; They are mutable only so that V8's optimizing compiler cannot fold them back into v128.const: it rebuilds a
  ;; constant in the loop at every use (three instructions each), which made gelu_fwd ~1.5x slower. Never written.
  (global $exp_lo (mut v128) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3))
  (global $exp_hi (mut v128) (v128.const f32x4 88.3 88.3 88.3 88.3))
  (global $log2e (mut v128) (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))
  (global $exp_magic (mut v128) (v128.const f32x4 12583039 12583039 12583039 12583039))
  (global $ln2_hi (mut v128) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))
  (global $ln2_lo (mut v128) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))
  (global $exp_c6 (mut v128) (v128.const f32x4 0.00138368458 0.00138368458 0.00138368458 0.00138368458))
  (global $exp_c5 (mut v128) (v128.const f32x4 0.00837481581 0.00837481581 0.00837481581 0.00837481581))
  (global $exp_c4 (mut v128) (v128.const f32x4 0.0416682251 0.0416682251 0.0416682251 0.0416682251))
  (global $exp_c3 (mut v128) (v128.const f32x4 0.166664198 0.166664198 0.166664198 0.166664198))
  (global $exp_c2 (mut v128) (v128.const f32x4 0.499999911 0.499999911 0.499999911 0.499999911))
  (global $one (mut v128) (v128.const f32x4 1 1 1 1))
  (global $gelu_lo (mut v128) (v128.const f32x4 -9.9 -9.9 -9.9 -9.9))
  (global $gelu_hi (mut v128) (v128.const f32x4 9.9 9.9 9.9 9.9))
  (global $gelu_ca (mut v128) (v128.const f32x4 -1.59576912 -1.59576912 -1.59576912 -1.59576912))
  (global $gelu_cb (mut v128) (v128.const f32x4 -0.0713548162 -0.0713548162 -0.0713548162 -0.0713548162))
  (global $gelu_da (mut v128) (v128.const f32x4 1.59576912 1.59576912 1.59576912 1.59576912))
  (global $gelu_db (mut v128) (v128.const f32x4 0.214064449 0.214064449 0.214064449 0.214064449))

  ;; e^z of n floats at p, in place: z clamped to [-87.3, 88.3] (so 2^n below is a normal float; NaN stays NaN; below
  ;; -87.3 the result is 0, where the true e^z is subnormal or 0), then
  ;; z = n · ln 2 + r with n = nearest(z · log2 e) and |r| <= ln 2 / 2, ln 2 split in two (its high part has 9
  ;; significant bits, so n · hi is exact). n comes from adding 1.5 · 2^23 + 127 to z · log2 e: the sum's low mantissa
  ;; bits are then n + 127, which shifted left by 23 are 2^n's bits, and subtracting the constant again gives n. e^r is
  ;; a degree-6 polynomial fitted to e^r's relative error on [-ln 2 / 2, ln 2 / 2] (Remez exchange, ~2e-9 before its
  ;; coefficients were rounded to f32). Within ~1.3 ulp of e^z. The gelu kernels run it on their chunks; exported as
  ;; "exp" for its own test.
  (func $exp_n (export "exp") (param $p i32) (param $n i32)
    (drop (call $exp_to (local.get $p) (local.get $p) (local.get $n) (f32.const 0))))

  ;; dst = e^(src − shift) for n floats ($exp_n's method; src may be dst), returning their sum: the softmax kernels'
  ;; exp and sum in one sweep.
  (func $exp_to (param $p i32) (param $dst i32) (param $n i32) (param $shift f32) (result f32)
    (local $end4 i32) (local $t i32) (local $z v128) (local $k v128) (local $f v128) (local $r v128) (local $q v128)
    (local $lo v128) (local $hi v128) (local $l2e v128) (local $magic v128) (local $ln2hi v128) (local $ln2lo v128)
    (local $c6 v128) (local $c5 v128) (local $c4 v128) (local $c3 v128) (local $c2 v128) (local $one v128)
    (local $under v128) (local $vs v128) (local $acc v128) (local $sum f32)
    (local.set $lo (global.get $exp_lo))
    (local.set $hi (global.get $exp_hi))
    (local.set $l2e (global.get $log2e))
    (local.set $magic (global.get $exp_magic))
    (local.set $ln2hi (global.get $ln2_hi))
    (local.set $ln2lo (global.get $ln2_lo))
    (local.set $c6 (global.get $exp_c6))
    (local.set $c5 (global.get $exp_c5))
    (local.set $c4 (global.get $exp_c4))
    (local.set $c3 (global.get $exp_c3))
    (local.set $c2 (global.get $exp_c2))
    (local.set $one (global.get $one))
    (local.set $vs (f32x4.splat (local.get $shift)))
    (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (local.set $t (i32.and (local.get $n) (i32.const 3)))
    (block $done
      (loop $loop
        ;; whole vectors, then the last n mod 4 floats as one
        (if (i32.lt_u (local.get $p) (local.get $end4))
          (then (local.set $z (v128.load (local.get $p))))
          (else
            (br_if $done (i32.eqz (local.get $t)))
            (local.set $z (call $load_tail (local.get $p) (local.get $t)))))
        (local.set $z (f32x4.sub (local.get $z) (local.get $vs)))
        (local.set $under (f32x4.lt (local.get $z) (local.get $lo)))
        (local.set $z (f32x4.pmin (f32x4.pmax (local.get $z) (local.get $lo)) (local.get $hi)))
        (local.set $k (f32x4.add (f32x4.mul (local.get $z) (local.get $l2e)) (local.get $magic)))
        (local.set $f (f32x4.sub (local.get $k) (local.get $magic)))
        (local.set $r (f32x4.sub (f32x4.sub (local.get $z) (f32x4.mul (local.get $f) (local.get $ln2hi)))
          (f32x4.mul (local.get $f) (local.get $ln2lo))))
        (local.set $q (f32x4.add (local.get $c5) (f32x4.mul (local.get $r) (local.get $c6))))
        (local.set $q (f32x4.add (local.get $c4) (f32x4.mul (local.get $r) (local.get $q))))
        (local.set $q (f32x4.add (local.get $c3) (f32x4.mul (local.get $r) (local.get $q))))
        (local.set $q (f32x4.add (local.get $c2) (f32x4.mul (local.get $r) (local.get $q))))
        (local.set $q (f32x4.add (local.get $one) (f32x4.mul (local.get $r) (local.get $q))))
        (local.set $q (f32x4.add (local.get $one) (f32x4.mul (local.get $r) (local.get $q))))
        ;; below the range: 0 (the true e^z is subnormal or 0; a masked score's -1e9 must give exactly 0)
        (local.set $z (v128.andnot (f32x4.mul (local.get $q) (i32x4.shl (local.get $k) (i32.const 23))) (local.get $under)))
        (if (i32.lt_u (local.get $p) (local.get $end4))
          (then
            (v128.store (local.get $dst) (local.get $z))
            (local.set $acc (f32x4.add (local.get $acc) (local.get $z))))
          (else
            (call $store_tail (local.get $dst) (local.get $t) (local.get $z))
            ;; the tail's lanes only (the others hold e^0)
            (local.set $sum (f32x4.extract_lane 0 (local.get $z)))
            (if (i32.gt_u (local.get $t) (i32.const 1))
              (then (local.set $sum (f32.add (local.get $sum) (f32x4.extract_lane 1 (local.get $z))))))
            (if (i32.gt_u (local.get $t) (i32.const 2))
              (then (local.set $sum (f32.add (local.get $sum) (f32x4.extract_lane 2 (local.get $z))))))
            (br $done)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $loop)))
    (f32.add (call $hsum (local.get $acc)) (local.get $sum)))

  ;; gelu_new (GPT-2's tanh approximation) of n floats: out = x · σ(t), t = 2u = 2√(2/π)(x + 0.044715 x³), with
  ;; σ(t) = 1 / (1 + e^-t). x is clamped to ±9.9 first (|t| <= 85, so e^-t and x² stay finite), and σ is exactly 0
  ;; from x = -9.9 down (a mask) and exactly 1 from 9.9 up (e^-85 vanishes beside 1): no NaN or Inf for large |x|.
  ;; In chunks of 1024 floats, three sweeps each while they sit in the cache: out = -t, out = e^-t ($exp_n), out = x · σ.
  (func (export "gelu_fwd") (param $x i32) (param $out i32) (param $n i32)
    (local $m i32) (local $p i32) (local $q i32) (local $end4 i32) (local $t i32)
    (local $v v128) (local $e v128) (local $xc v128) (local $lo v128) (local $hi v128) (local $ca v128) (local $cb v128)
    (local $one v128)
    (local.set $lo (global.get $gelu_lo))
    (local.set $hi (global.get $gelu_hi))
    (local.set $ca (global.get $gelu_ca))
    (local.set $cb (global.get $gelu_cb))
    (local.set $one (global.get $one))
    (block $chunksDone
      (loop $chunks
        (br_if $chunksDone (i32.le_s (local.get $n) (i32.const 0)))
        (local.set $m (select (i32.const 1024) (local.get $n) (i32.gt_s (local.get $n) (i32.const 1024))))
        (local.set $t (i32.and (local.get $m) (i32.const 3)))
        ;; out = -t = x · (-2√(2/π) - 2√(2/π) · 0.044715 x²), x clamped
        (local.set $p (local.get $x))
        (local.set $q (local.get $out))
        (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $m) (i32.const -4)) (i32.const 2))))
        (block $d1
          (loop $l1
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (local.set $v (v128.load (local.get $p))))
              (else
                (br_if $d1 (i32.eqz (local.get $t)))
                (local.set $v (call $load_tail (local.get $p) (local.get $t)))))
            (local.set $xc (f32x4.pmin (f32x4.pmax (local.get $v) (local.get $lo)) (local.get $hi)))
            (local.set $v (f32x4.mul (local.get $xc)
              (f32x4.add (local.get $ca) (f32x4.mul (local.get $cb) (f32x4.mul (local.get $xc) (local.get $xc))))))
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (v128.store (local.get $q) (local.get $v)))
              (else
                (call $store_tail (local.get $q) (local.get $t) (local.get $v))
                (br $d1)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $q (i32.add (local.get $q) (i32.const 16)))
            (br $l1)))
        (call $exp_n (local.get $out) (local.get $m))
        ;; out = x · σ(t), σ(t) = 1 / (1 + e^-t), 0 where x <= -9.9 (and where x is NaN: x · 0 is NaN)
        (local.set $p (local.get $x))
        (local.set $q (local.get $out))
        (block $d3
          (loop $l3
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then
                (local.set $v (v128.load (local.get $p)))
                (local.set $e (v128.load (local.get $q))))
              (else
                (br_if $d3 (i32.eqz (local.get $t)))
                (local.set $v (call $load_tail (local.get $p) (local.get $t)))
                (local.set $e (call $load_tail (local.get $q) (local.get $t)))))
            (local.set $v (f32x4.mul (local.get $v)
              (v128.and (f32x4.div (local.get $one) (f32x4.add (local.get $one) (local.get $e)))
                (f32x4.gt (local.get $v) (local.get $lo)))))
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (v128.store (local.get $q) (local.get $v)))
              (else
                (call $store_tail (local.get $q) (local.get $t) (local.get $v))
                (br $d3)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $q (i32.add (local.get $q) (i32.const 16)))
            (br $l3)))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $out (i32.add (local.get $out) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $n (i32.sub (local.get $n) (local.get $m)))
        (br $chunks))))

  ;; Its input gradient from x alone: dx = dy · (s + 2x · s(1 − s) · √(2/π)(1 + 3 · 0.044715 x²)), s = σ(t), with
  ;; x clamped and s masked as in gelu_fwd, and 1 − s taken as e^-t · s (no cancellation as s nears 1). Same chunks:
  ;; dx = -t, dx = e^-t, dx = the gradient.
  (func (export "gelu_bwd") (param $x i32) (param $dy i32) (param $dx i32) (param $n i32)
    (local $m i32) (local $p i32) (local $q i32) (local $g i32) (local $end4 i32) (local $t i32)
    (local $v v128) (local $e v128) (local $d v128) (local $s v128) (local $x2 v128) (local $xc v128)
    (local $lo v128) (local $hi v128) (local $ca v128) (local $cb v128) (local $da v128) (local $db v128) (local $one v128)
    (local.set $lo (global.get $gelu_lo))
    (local.set $hi (global.get $gelu_hi))
    (local.set $ca (global.get $gelu_ca))
    (local.set $cb (global.get $gelu_cb))
    (local.set $da (global.get $gelu_da))
    (local.set $db (global.get $gelu_db))
    (local.set $one (global.get $one))
    (block $chunksDone
      (loop $chunks
        (br_if $chunksDone (i32.le_s (local.get $n) (i32.const 0)))
        (local.set $m (select (i32.const 1024) (local.get $n) (i32.gt_s (local.get $n) (i32.const 1024))))
        (local.set $t (i32.and (local.get $m) (i32.const 3)))
        ;; dx = -t
        (local.set $p (local.get $x))
        (local.set $q (local.get $dx))
        (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $m) (i32.const -4)) (i32.const 2))))
        (block $d1
          (loop $l1
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (local.set $v (v128.load (local.get $p))))
              (else
                (br_if $d1 (i32.eqz (local.get $t)))
                (local.set $v (call $load_tail (local.get $p) (local.get $t)))))
            (local.set $xc (f32x4.pmin (f32x4.pmax (local.get $v) (local.get $lo)) (local.get $hi)))
            (local.set $v (f32x4.mul (local.get $xc)
              (f32x4.add (local.get $ca) (f32x4.mul (local.get $cb) (f32x4.mul (local.get $xc) (local.get $xc))))))
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (v128.store (local.get $q) (local.get $v)))
              (else
                (call $store_tail (local.get $q) (local.get $t) (local.get $v))
                (br $d1)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $q (i32.add (local.get $q) (i32.const 16)))
            (br $l1)))
        (call $exp_n (local.get $dx) (local.get $m))
        ;; dx = dy · (s + x · e^-t · s² · 2√(2/π)(1 + 3 · 0.044715 x²))
        (local.set $p (local.get $x))
        (local.set $q (local.get $dx))
        (local.set $g (local.get $dy))
        (block $d3
          (loop $l3
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then
                (local.set $v (v128.load (local.get $p)))
                (local.set $e (v128.load (local.get $q)))
                (local.set $d (v128.load (local.get $g))))
              (else
                (br_if $d3 (i32.eqz (local.get $t)))
                (local.set $v (call $load_tail (local.get $p) (local.get $t)))
                (local.set $e (call $load_tail (local.get $q) (local.get $t)))
                (local.set $d (call $load_tail (local.get $g) (local.get $t)))))
            (local.set $xc (f32x4.pmin (f32x4.pmax (local.get $v) (local.get $lo)) (local.get $hi)))
            (local.set $x2 (f32x4.mul (local.get $xc) (local.get $xc)))
            (local.set $s (v128.and (f32x4.div (local.get $one) (f32x4.add (local.get $one) (local.get $e)))
              (f32x4.gt (local.get $xc) (local.get $lo))))
            (local.set $v (f32x4.mul (local.get $d)
              (f32x4.add (local.get $s)
                (f32x4.mul
                  (f32x4.mul (local.get $xc) (f32x4.mul (f32x4.mul (local.get $e) (local.get $s)) (local.get $s)))
                  (f32x4.add (local.get $da) (f32x4.mul (local.get $db) (local.get $x2)))))))
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (v128.store (local.get $q) (local.get $v)))
              (else
                (call $store_tail (local.get $q) (local.get $t) (local.get $v))
                (br $d3)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $q (i32.add (local.get $q) (i32.const 16)))
            (local.set $g (i32.add (local.get $g) (i32.const 16)))
            (br $l3)))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $dy (i32.add (local.get $dy) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $dx (i32.add (local.get $dx) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $n (i32.sub (local.get $n) (local.get $m)))
        (br $chunks))))

  ;; out = e^-x of m floats ($exp_n clamps -x to [-87.3, 88.3]): the first two sweeps of the silu kernels' chunks.
  (func $exp_neg (param $x i32) (param $out i32) (param $m i32)
    (local $p i32) (local $q i32) (local $end4 i32) (local $t i32) (local $v v128)
    (local.set $t (i32.and (local.get $m) (i32.const 3)))
    (local.set $p (local.get $x))
    (local.set $q (local.get $out))
    (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $m) (i32.const -4)) (i32.const 2))))
    (block $d1
      (loop $l1
        (if (i32.lt_u (local.get $p) (local.get $end4))
          (then (v128.store (local.get $q) (f32x4.neg (v128.load (local.get $p)))))
          (else
            (br_if $d1 (i32.eqz (local.get $t)))
            (call $store_tail (local.get $q) (local.get $t) (f32x4.neg (call $load_tail (local.get $p) (local.get $t))))
            (br $d1)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (local.set $q (i32.add (local.get $q) (i32.const 16)))
        (br $l1)))
    (call $exp_n (local.get $out) (local.get $m)))

  ;; SwiGLU's silu(g) · u of n floats: out = g · σ(g) · u, σ(g) = 1 / (1 + e^-g) on $exp_n, σ exactly 0 from
  ;; g = -88.3 down (where e^-g is clamped; g · σ(g) is below 1e-36 there) and exactly 1 where e^-g vanishes beside 1,
  ;; g · σ formed before the product with u: no NaN or Inf for large |g|. In chunks of 1024 floats while they sit in
  ;; the cache: out = e^-g ($exp_neg), then out = g · σ · u.
  (func (export "silu_mul_fwd") (param $g i32) (param $u i32) (param $out i32) (param $n i32)
    (local $m i32) (local $p i32) (local $q i32) (local $r i32) (local $end4 i32) (local $t i32)
    (local $v v128) (local $e v128) (local $w v128) (local $lo v128) (local $one v128)
    (local.set $lo (f32x4.neg (global.get $exp_hi)))
    (local.set $one (global.get $one))
    (block $chunksDone
      (loop $chunks
        (br_if $chunksDone (i32.le_s (local.get $n) (i32.const 0)))
        (local.set $m (select (i32.const 1024) (local.get $n) (i32.gt_s (local.get $n) (i32.const 1024))))
        (local.set $t (i32.and (local.get $m) (i32.const 3)))
        (call $exp_neg (local.get $g) (local.get $out) (local.get $m))
        (local.set $p (local.get $g))
        (local.set $q (local.get $out))
        (local.set $r (local.get $u))
        (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $m) (i32.const -4)) (i32.const 2))))
        (block $d2
          (loop $l2
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then
                (local.set $v (v128.load (local.get $p)))
                (local.set $e (v128.load (local.get $q)))
                (local.set $w (v128.load (local.get $r))))
              (else
                (br_if $d2 (i32.eqz (local.get $t)))
                (local.set $v (call $load_tail (local.get $p) (local.get $t)))
                (local.set $e (call $load_tail (local.get $q) (local.get $t)))
                (local.set $w (call $load_tail (local.get $r) (local.get $t)))))
            (local.set $v (f32x4.mul
              (f32x4.mul (local.get $v)
                (v128.and (f32x4.div (local.get $one) (f32x4.add (local.get $one) (local.get $e)))
                  (f32x4.gt (local.get $v) (local.get $lo))))
              (local.get $w)))
            (if (i32.lt_u (local.get $p) (local.get $end4))
              (then (v128.store (local.get $q) (local.get $v)))
              (else
                (call $store_tail (local.get $q) (local.get $t) (local.get $v))
                (br $d2)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (local.set $q (i32.add (local.get $q) (i32.const 16)))
            (local.set $r (i32.add (local.get $r) (i32.const 16)))
            (br $l2)))
        (local.set $g (i32.add (local.get $g) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $u (i32.add (local.get $u) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $out (i32.add (local.get $out) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $n (i32.sub (local.get $n) (local.get $m)))
        (br $chunks))))

  ;; Both its input gradients in one kernel, from g and u alone: dg = dy · u · s · (1 + g · (1 − s)) and
  ;; du = dy · g · s, s = σ(g) masked as in silu_mul_fwd and 1 − s taken as e^-g · s (no cancellation as s nears 1)
  ;; and masked too.
  ;; Same chunks: dg = e^-g, then both gradients.
  (func (export "silu_mul_bwd") (param $g i32) (param $u i32) (param $dy i32) (param $dg i32) (param $du i32) (param $n i32)
    (local $m i32) (local $pg i32) (local $pu i32) (local $pd i32) (local $qg i32) (local $qu i32)
    (local $end4 i32) (local $t i32)
    (local $v v128) (local $e v128) (local $w v128) (local $d v128) (local $s v128) (local $lo v128) (local $hi v128)
    (local $one v128)
    (local.set $lo (f32x4.neg (global.get $exp_hi)))
    (local.set $hi (f32x4.neg (global.get $exp_lo)))
    (local.set $one (global.get $one))
    (block $chunksDone
      (loop $chunks
        (br_if $chunksDone (i32.le_s (local.get $n) (i32.const 0)))
        (local.set $m (select (i32.const 1024) (local.get $n) (i32.gt_s (local.get $n) (i32.const 1024))))
        (local.set $t (i32.and (local.get $m) (i32.const 3)))
        (call $exp_neg (local.get $g) (local.get $dg) (local.get $m))
        (local.set $pg (local.get $g))
        (local.set $pu (local.get $u))
        (local.set $pd (local.get $dy))
        (local.set $qg (local.get $dg))
        (local.set $qu (local.get $du))
        (local.set $end4 (i32.add (local.get $pg) (i32.shl (i32.and (local.get $m) (i32.const -4)) (i32.const 2))))
        (block $d2
          (loop $l2
            (if (i32.lt_u (local.get $pg) (local.get $end4))
              (then
                (local.set $v (v128.load (local.get $pg)))
                (local.set $e (v128.load (local.get $qg)))
                (local.set $w (v128.load (local.get $pu)))
                (local.set $d (v128.load (local.get $pd))))
              (else
                (br_if $d2 (i32.eqz (local.get $t)))
                (local.set $v (call $load_tail (local.get $pg) (local.get $t)))
                (local.set $e (call $load_tail (local.get $qg) (local.get $t)))
                (local.set $w (call $load_tail (local.get $pu) (local.get $t)))
                (local.set $d (call $load_tail (local.get $pd) (local.get $t)))))
            (local.set $s (v128.and (f32x4.div (local.get $one) (f32x4.add (local.get $one) (local.get $e)))
              (f32x4.gt (local.get $v) (local.get $lo))))
            ;; e = dg = dy · u · s · (1 + g · (e · s)), e · s = 1 − s exactly 0 from g = 87.3 up (where e^-g is
            ;; clamped: g · (1 − s) is below 1e-36 there, not the clamp's g · 1.2e-38); w = du = dy · (g · s)
            (local.set $e (f32x4.mul (f32x4.mul (local.get $d) (local.get $w))
              (f32x4.mul (local.get $s)
                (f32x4.add (local.get $one)
                  (f32x4.mul (local.get $v)
                    (v128.and (f32x4.mul (local.get $e) (local.get $s)) (f32x4.lt (local.get $v) (local.get $hi))))))))
            (local.set $w (f32x4.mul (local.get $d) (f32x4.mul (local.get $v) (local.get $s))))
            (if (i32.lt_u (local.get $pg) (local.get $end4))
              (then
                (v128.store (local.get $qg) (local.get $e))
                (v128.store (local.get $qu) (local.get $w)))
              (else
                (call $store_tail (local.get $qg) (local.get $t) (local.get $e))
                (call $store_tail (local.get $qu) (local.get $t) (local.get $w))
                (br $d2)))
            (local.set $pg (i32.add (local.get $pg) (i32.const 16)))
            (local.set $pu (i32.add (local.get $pu) (i32.const 16)))
            (local.set $pd (i32.add (local.get $pd) (i32.const 16)))
            (local.set $qg (i32.add (local.get $qg) (i32.const 16)))
            (local.set $qu (i32.add (local.get $qu) (i32.const 16)))
            (br $l2)))
        (local.set $g (i32.add (local.get $g) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $u (i32.add (local.get $u) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $dy (i32.add (local.get $dy) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $dg (i32.add (local.get $dg) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $du (i32.add (local.get $du) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $n (i32.sub (local.get $n) (local.get $m)))
        (br $chunks))))
)
