// The MPI Communicator on 3 ranks (ctest: test_communicator_np3): every collective, blocking and
// non-blocking, against values each rank can compute by itself; sub-communicators; the mesh's
// coordinates and groups (and mesh_group, which must agree with them); layout errors; what blocking
// calls record for the collective watchdog; the checked front's argument validation; and the EP
// row exchange as an autograd op (its backward is the reverse exchange); and, in the SIMT emulator
// (test_communicator_cuda_np3), every call on device buffers.
#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <string>

#include "model/autograd/node.h"
#include "model/ops/ops.h"
#include "model/tensor/cuda/backend.h"
#include "parallel/communicator.h"
#include "parallel/ep_dispatcher.h"
#include "parallel/host_staging.h"
#include "parallel/mesh.h"
#include "parallel/mpi_runtime.h"
#include "parallel/watchdog.h"

namespace mlamoe {
namespace {

std::unique_ptr<Communicator> world() { return mpi_world_communicator(); }

TEST(Communicator, AllReduceBlockingAndNonBlocking) {
  auto c = world();
  int r = c->rank(), n = c->size();
  std::vector<double> v = {1.0 * r, 2.0};
  c->all_reduce(v.data(), 2, DType::F64, ReduceOp::Sum);
  EXPECT_EQ(v[0], n * (n - 1) / 2.0);
  EXPECT_EQ(v[1], 2.0 * n);
  std::vector<float> f = {static_cast<float>(r)};
  c->iall_reduce(f.data(), 1, DType::F32, ReduceOp::Max)->wait();
  EXPECT_EQ(f[0], n - 1.0f);
  EXPECT_EQ(c->stats().calls["all_reduce"], 2);
}

TEST(Communicator, ReduceScatterAllGatherBroadcast) {
  auto c = world();
  int r = c->rank(), n = c->size();
  std::vector<int64_t> send(2 * n);
  for (int i = 0; i < 2 * n; ++i) send[i] = i + 100 * r;  // rank r's block b holds 2b, 2b+1 (+100r)
  for (bool nb : {false, true}) {
    std::vector<int64_t> recv(2);
    if (nb)
      c->ireduce_scatter(send.data(), recv.data(), 2, DType::I64)->wait();
    else
      c->reduce_scatter(send.data(), recv.data(), 2, DType::I64);
    int64_t hundreds = 100 * n * (n - 1) / 2;
    EXPECT_EQ(recv[0], n * (2 * r) + hundreds);
    EXPECT_EQ(recv[1], n * (2 * r + 1) + hundreds);
  }
  std::vector<int64_t> counts(n);
  for (int i = 0; i < n; ++i) counts[i] = i + 1;  // rank i contributes i+1 values equal to i
  std::vector<int32_t> mine(r + 1, r), all(n * (n + 1) / 2);
  for (bool nb : {false, true}) {
    std::fill(all.begin(), all.end(), -1);
    if (nb)
      c->iall_gather_v(mine.data(), all.data(), counts, DType::I32)->wait();
    else
      c->all_gather_v(mine.data(), all.data(), counts, DType::I32);
    int k = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j <= i; ++j) EXPECT_EQ(all[k++], i);
  }
  double x = r == 1 ? 3.5 : 0.0;
  c->broadcast(&x, 1, DType::F64, 1);
  EXPECT_EQ(x, 3.5);
  double y = r == 2 ? -1.0 : 0.0;
  c->ibroadcast(&y, 1, DType::F64, 2)->wait();
  EXPECT_EQ(y, -1.0);
  c->barrier();
  c->ibarrier()->wait();
}

TEST(Communicator, AllToAllVAndPointToPoint) {
  auto c = world();
  int r = c->rank(), n = c->size();
  // Rank r sends (r + d + 1) values "10r + d" to rank d.
  std::vector<int64_t> sc(n), rc(n);
  std::vector<float> send;
  for (int d = 0; d < n; ++d) {
    sc[d] = r + d + 1;
    rc[d] = d + r + 1;
    for (int i = 0; i < sc[d]; ++i) send.push_back(static_cast<float>(10 * r + d));
  }
  for (bool nb : {false, true}) {
    std::vector<float> recv(std::accumulate(rc.begin(), rc.end(), int64_t{0}));
    if (nb)
      c->iall_to_all_v(send.data(), sc, recv.data(), rc, DType::F32)->wait();
    else
      c->all_to_all_v(send.data(), sc, recv.data(), rc, DType::F32);
    size_t k = 0;
    for (int s = 0; s < n; ++s)
      for (int i = 0; i < rc[s]; ++i) EXPECT_EQ(recv[k++], static_cast<float>(10 * s + r));
  }
  // A ring of messages, blocking and non-blocking.
  int next = (r + 1) % n, prev = (r + n - 1) % n;
  int64_t out = r, in = -1;
  auto req = c->irecv(&in, 1, DType::I64, prev, 5);
  c->isend(&out, 1, DType::I64, next, 5)->wait();
  req->wait();
  EXPECT_EQ(in, prev);
  if (r == 0) c->send(&out, 1, DType::I64, 1, 6);
  if (r == 1) {
    c->recv(&in, 1, DType::I64, 0, 6);
    EXPECT_EQ(in, 0);
  }
}

TEST(Communicator, SplitAndMesh) {
  auto c = world();
  auto sub = c->split(c->rank() % 2, c->rank());
  EXPECT_EQ(sub->size(), c->rank() % 2 == 0 ? (c->size() + 1) / 2 : c->size() / 2);
  // 3 ranks: pp 3 (one rank per stage) — and the layout errors.
  Mesh m = make_mesh(world(), mesh_shape(3, 3, 1, 16, 4));
  EXPECT_EQ(m.pp_rank, c->rank());
  EXPECT_EQ(m.dp->size(), 1);
  EXPECT_EQ(m.pp->size(), 3);
  EXPECT_EQ(m.embed->size(), c->rank() == 1 ? 1 : 2);      // first and last stage share the embedding
  Mesh d = make_mesh(world(), mesh_shape(3, 1, 3, 6, 4));  // dp 3 = ep 3
  EXPECT_EQ(d.ep_rank, c->rank());
  EXPECT_EQ(d.edp->size(), 1);
  EXPECT_THROW(mesh_shape(3, 2, 1, 16, 4), Error);  // 3 ranks, pp 2
  EXPECT_THROW(mesh_shape(4, 1, 3, 16, 4), Error);  // ep 3 does not divide dp 4
  EXPECT_THROW(mesh_shape(4, 1, 4, 6, 4), Error);   // ep 4 does not divide 6 experts
  EXPECT_THROW(mesh_shape(8, 8, 1, 16, 4), Error);  // more stages than layers
}

// mesh_group (the watchdog follows waits through it) lists exactly the members make_mesh gives
// each group, on these meshes and on a hand-checked 8-rank pp2·dp4·ep2 one.
TEST(Mesh, GroupsAsTheWatchdogComputesThem) {
  for (MeshShape shape : {mesh_shape(3, 3, 1, 16, 4), mesh_shape(3, 1, 3, 6, 4), mesh_shape(3, 1, 1, 6, 4)}) {
    Mesh m = make_mesh(world(), shape);
    for (Communicator* g : {m.world.get(), m.dp.get(), m.ep.get(), m.edp.get(), m.pp.get(), m.embed.get()}) {
      std::vector<int64_t> mine = {m.rank}, got(g->size());
      g->all_gather_v(mine.data(), got.data(), std::vector<int64_t>(g->size(), 1), DType::I64);
      EXPECT_EQ(mesh_group(shape, g->name(), m.rank), got) << g->name() << " of " << describe_rank(shape, m.rank);
    }
  }
  MeshShape s = mesh_shape(8, 2, 2, 16, 4);  // dp 4, edp 2
  EXPECT_EQ(describe_rank(s, 7), "rank 7 (pp 1, dp 3, ep 1)");
  EXPECT_EQ(mesh_group(s, "dp", 5), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(mesh_group(s, "ep", 6), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(mesh_group(s, "edp", 5), (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(mesh_group(s, "pp", 2), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(mesh_group(s, "embed", 1), (std::vector<int64_t>{1, 5}));
  EXPECT_TRUE(mesh_group(s, "other", 1).empty());
}

// Every blocking call and wait tells the watchdog what the rank waits in: the sequence number is
// odd inside a call and even outside (each call adds 2), and the call names the operation, the
// group and a point-to-point peer as a world rank.
TEST(Watchdog, BlockingCallsAreRecorded) {
  auto c = world();
  int r = c->rank(), n = c->size();
  auto op = [] { return static_cast<CommOp>(progress::what.load() & 0xff); };
  uint64_t s0 = progress::seq.load();
  EXPECT_EQ(s0 % 2, 0u);
  double x = 1;
  c->all_reduce(&x, 1, DType::F64, ReduceOp::Sum);
  EXPECT_EQ(progress::seq.load(), s0 + 2);
  EXPECT_EQ(op(), CommOp::AllReduce);
  EXPECT_EQ((progress::what.load() >> 8) & 0xff, comm_kind_of("world"));
  auto req = c->iall_reduce(&x, 1, DType::F64, ReduceOp::Sum);
  EXPECT_EQ(progress::seq.load(), s0 + 2);  // starting a non-blocking operation does not block
  req->wait();
  EXPECT_EQ(progress::seq.load(), s0 + 4);
  EXPECT_EQ(op(), CommOp::WaitAllReduce);
  int64_t v = r;
  if (r == 0) c->send(&v, 1, DType::I64, n - 1, 9);
  if (r == n - 1) {
    c->recv(&v, 1, DType::I64, 0, 9);
    EXPECT_EQ(op(), CommOp::Recv);
    EXPECT_EQ(static_cast<int>(progress::what.load() >> 32) - 1, 0);  // from world rank 0
  }
  auto sub = c->split(r == 0 ? 0 : 1, r);
  sub->set_name("ep");
  sub->barrier();
  EXPECT_EQ(op(), CommOp::Barrier);
  EXPECT_EQ((progress::what.load() >> 8) & 0xff, comm_kind_of("ep"));
  EXPECT_STREQ(comm_op_name(CommOp::WaitRecv), "wait(irecv)");
  EXPECT_STREQ(comm_kind_name(comm_kind_of("someone's group")), "group");
}

// Host waits for the device (model/tensor/cuda/backend.h, HostWait) are blocking calls the watchdog
// sees, as a wait on the world group, where an NCCL collective queued on the device would leave a
// rank waiting; inside a blocking call (a staging copy) they are that call's.
TEST(Watchdog, HostWaitsForTheDeviceAreRecorded) {
  auto c = world();
  watch_device_waits(c->size());
  uint64_t s0 = progress::seq.load();
  {
    cuda::HostWait waiting;
    EXPECT_EQ(progress::seq.load(), s0 + 1);
    EXPECT_EQ(static_cast<CommOp>(progress::what.load() & 0xff), CommOp::WaitDevice);
    EXPECT_EQ((progress::what.load() >> 8) & 0xff, comm_kind_of("world"));
    cuda::HostWait nested;  // counts once
    EXPECT_EQ(progress::seq.load(), s0 + 1);
  }
  EXPECT_EQ(progress::seq.load(), s0 + 2);
  {
    BlockingCall in_a_call(pack_call(CommOp::AllReduce, comm_kind_of("dp"), 0, -1));
    cuda::HostWait staging;
    EXPECT_EQ(progress::seq.load(), s0 + 3);
    EXPECT_EQ(static_cast<CommOp>(progress::what.load() & 0xff), CommOp::AllReduce);
  }
  EXPECT_EQ(progress::seq.load(), s0 + 4);
  unwatch_device_waits();
  { cuda::HostWait unwatched; }
  EXPECT_EQ(progress::seq.load(), s0 + 4);
}

// The checked front: a bad argument throws mlamoe::Error naming the collective, the group and the
// value, on the calling rank alone and before anything is recorded or sent (so every rank can hit
// these on its own; they hold for a world of any size, 1 included).
void expect_rejected(const std::function<void()>& call, std::initializer_list<std::string> parts) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one mentioning " << *parts.begin();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(CommunicatorChecks, ScalarCountsRootsPeersTagsDtypes) {
  auto c = world();
  int n = c->size();
  double x = 0;
  int64_t over = int64_t{INT32_MAX} + 1;
  expect_rejected([&] { c->all_reduce(&x, -1, DType::F64, ReduceOp::Sum); }, {"all_reduce", "'world'", "count = -1", "negative"});
  expect_rejected([&] { c->iall_reduce(&x, -3, DType::F64, ReduceOp::Sum); }, {"iall_reduce", "'world'", "-3"});
  expect_rejected([&] { c->all_reduce(&x, over, DType::F64, ReduceOp::Sum); }, {"all_reduce", "2147483648", "limit 2147483647"});
  expect_rejected([&] { c->reduce_scatter(&x, &x, over, DType::F64); }, {"reduce_scatter", "recv_count = 2147483648"});
  expect_rejected([&] { c->broadcast(&x, 1, DType::F64, n); }, {"broadcast", "'world'", "root = " + std::to_string(n)});
  expect_rejected([&] { c->ibroadcast(&x, 1, DType::F64, -1); }, {"ibroadcast", "root = -1"});
  expect_rejected([&] { c->send(&x, 1, DType::F64, n, 0); }, {"send", "dest = " + std::to_string(n)});
  expect_rejected([&] { c->isend(&x, 1, DType::F64, -2, 0); }, {"isend", "dest = -2"});
  expect_rejected([&] { c->recv(&x, 1, DType::F64, -1, 0); }, {"recv", "source = -1"});
  expect_rejected([&] { c->irecv(&x, 1, DType::F64, n + 5, 0); }, {"irecv", "source = " + std::to_string(n + 5)});
  expect_rejected([&] { c->send(&x, 1, DType::F64, 0, -7); }, {"send", "tag = -7"});
  expect_rejected([&] { c->send(&x, over, DType::F64, 0, 1); }, {"send", "count = 2147483648"});
  expect_rejected([&] { c->all_reduce(&x, 1, static_cast<DType>(42), ReduceOp::Sum); }, {"all_reduce", "unknown dtype", "42"});
  expect_rejected([&] { c->all_reduce(nullptr, 2, DType::F64, ReduceOp::Sum); }, {"all_reduce", "buf is null", "2 elements"});
  // Nothing was recorded for a rejected call, and the communicator still works.
  EXPECT_TRUE(c->stats().calls.empty());
  EXPECT_EQ(c->all_reduce_sum(1.0), n);
  EXPECT_EQ(c->stats().calls["all_reduce"], 1);
}

TEST(CommunicatorChecks, CountVectors) {
  auto c = world();
  int n = c->size(), r = c->rank();
  auto sub = c->split(0, r);  // every rank, under another name
  sub->set_name("ep");
  std::vector<double> buf(8);
  std::vector<int64_t> ok(n, 1), longer(n + 1, 1), shorter(n - 1, 1), negative(n, 1), huge(n, 0);
  negative[n - 1] = -2;
  huge[0] = int64_t{INT32_MAX} + 5;
  expect_rejected([&] { sub->all_gather_v(buf.data(), buf.data(), longer, DType::F64); },
                  {"all_gather_v", "'ep'", std::to_string(n + 1) + " counts", "group of " + std::to_string(n)});
  expect_rejected([&] { sub->iall_gather_v(buf.data(), buf.data(), negative, DType::F64); },
                  {"iall_gather_v", "'ep'", "counts[" + std::to_string(n - 1) + "] = -2", "negative"});
  expect_rejected([&] { sub->all_to_all_v(buf.data(), shorter, buf.data(), ok, DType::F64); },
                  {"all_to_all_v", "'ep'", std::to_string(n - 1) + " send_counts"});
  expect_rejected([&] { sub->iall_to_all_v(buf.data(), ok, buf.data(), longer, DType::F64); },
                  {"iall_to_all_v", std::to_string(n + 1) + " recv_counts"});
  expect_rejected([&] { sub->all_to_all_v(buf.data(), huge, buf.data(), ok, DType::F64); },
                  {"all_to_all_v", "send_counts[0] = 2147483652", "limit 2147483647"});
  expect_rejected([&] { sub->all_to_all_v(nullptr, ok, buf.data(), ok, DType::F64); }, {"all_to_all_v", "send is null"});
  if (n >= 3) {  // counts that fit one by one, but block 2 would start past INT32_MAX
    std::vector<int64_t> halves(n, 0);
    halves[0] = halves[1] = int64_t{INT32_MAX} / 2 + 1;
    expect_rejected([&] { sub->all_gather_v(buf.data(), buf.data(), halves, DType::F64); },
                    {"all_gather_v", "'ep'", "displacement of block 2", "limit 2147483647"});
  }
  EXPECT_TRUE(sub->stats().calls.empty());
  // Rejected calls leave the watchdog's sequence alone (validation comes before the BlockingCall).
  uint64_t seq = progress::seq.load();
  expect_rejected([&] { sub->all_to_all_v(buf.data(), negative, buf.data(), ok, DType::F64); }, {"all_to_all_v"});
  EXPECT_EQ(progress::seq.load(), seq);
  // A valid exchange on the same group afterwards: one value to every rank.
  std::vector<double> mine(n, static_cast<double>(r)), got(n, -1.0);
  sub->all_to_all_v(mine.data(), ok, got.data(), ok, DType::F64);
  for (int s = 0; s < n; ++s) EXPECT_EQ(got[s], s);
  EXPECT_EQ(sub->stats().calls["all_to_all"], 1);
  EXPECT_EQ(sub->stats().bytes["all_to_all"], (n - 1) * 8);
}

// The row exchange's backward sends the gradients back: d(Σ w ⊙ exchange(x))/dx = exchange⁻¹(w).
// Buffers in CUDA device memory (ctest test_communicator_cuda_np3 runs the SIMT emulator) are
// staged through the host (parallel/host_staging.h): every collective, blocking and not, and
// point-to-point messages give on device tensors what they give on host ones.
// The same calls on the NCCL communicator (its MPI stand-in here: the grouped sends and receives
// of all-gather-v and all-to-all-v, host buffers staged through the device), on device buffers and
// on host ones.
void every_call(Communicator* c, Device dev);

TEST(DeviceBuffers, EveryCallAsOnTheHost) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA backend (MLAMOE_CUDA_BACKEND=simt)";
  every_call(world().get(), Device::cuda(0));
}

TEST(DeviceBuffers, NcclCommunicatorOnDeviceAndHostBuffers) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA backend (MLAMOE_CUDA_BACKEND=simt)";
  auto c = nccl_world_communicator(Device::cuda(0));
  if (c->rank() == 0) std::printf("NCCL communicator over %s\n", c->transport().c_str());
  every_call(c.get(), Device::cuda(0));
  every_call(c.get(), Device::cpu());
  auto sub = c->split(c->rank() % 2, c->rank());  // groups of the even and the odd ranks
  int64_t x = c->rank();
  sub->all_reduce(&x, 1, DType::I64, ReduceOp::Sum);
  int64_t want = 0;
  for (int q = c->rank() % 2; q < c->size(); q += 2) want += q;
  EXPECT_EQ(x, want);
}

void every_call(Communicator* c, Device dev) {
  int r = c->rank(), n = c->size();
  auto on_dev = [&](std::vector<float> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(dev); };
  auto host = [](const Tensor& t) { return t.to(Device::cpu()).to_vector<float>(); };
  EXPECT_EQ(cuda::device_of_pointer(comm_buffer(on_dev({1.0f}))), dev.is_cuda() ? 0 : -1);
  std::vector<float> plain = {1.0f};
  EXPECT_EQ(cuda::device_of_pointer(plain.data()), -1);
  for (bool nb : {false, true}) {
    Tensor a = on_dev({1.0f * r, 2.0f});
    if (nb)
      c->iall_reduce(comm_buffer(a), 2, DType::F32, ReduceOp::Sum)->wait();
    else
      c->all_reduce(comm_buffer(a), 2, DType::F32, ReduceOp::Sum);
    EXPECT_EQ(host(a), std::vector<float>({n * (n - 1) / 2.0f, 2.0f * n}));
    std::vector<float> sv(2 * n);
    for (int i = 0; i < 2 * n; ++i) sv[i] = static_cast<float>(i + 10 * r);
    Tensor send = on_dev(sv), recv = on_dev({-1.0f, -1.0f});
    if (nb)
      c->ireduce_scatter(comm_buffer(send), comm_buffer(recv), 2, DType::F32)->wait();
    else
      c->reduce_scatter(comm_buffer(send), comm_buffer(recv), 2, DType::F32);
    float tens = 10.0f * n * (n - 1) / 2;
    EXPECT_EQ(host(recv), std::vector<float>({n * 2.0f * r + tens, n * (2.0f * r + 1) + tens}));
    std::vector<int64_t> counts(n);
    for (int i = 0; i < n; ++i) counts[i] = i + 1;
    Tensor mine = on_dev(std::vector<float>(r + 1, static_cast<float>(r))), all = on_dev(std::vector<float>(n * (n + 1) / 2, -1));
    if (nb)
      c->iall_gather_v(comm_buffer(mine), comm_buffer(all), counts, DType::F32)->wait();
    else
      c->all_gather_v(comm_buffer(mine), comm_buffer(all), counts, DType::F32);
    std::vector<float> want;
    for (int i = 0; i < n; ++i) want.insert(want.end(), i + 1, static_cast<float>(i));
    EXPECT_EQ(host(all), want);
    int root = n > 1 ? 1 : 0;  // tools/gpu_check.sh runs this on one rank
    Tensor b = on_dev({r == root ? 7.0f : 0.0f});
    if (nb)
      c->ibroadcast(comm_buffer(b), 1, DType::F32, root)->wait();
    else
      c->broadcast(comm_buffer(b), 1, DType::F32, root);
    EXPECT_EQ(host(b), std::vector<float>({7.0f}));
    // all-to-all-v: rank r sends j + 1 copies of r·10 + j to rank j
    std::vector<int64_t> sc(n), rc(n);
    std::vector<float> out, expect;
    for (int j = 0; j < n; ++j) {
      sc[j] = j + 1, rc[j] = r + 1;
      out.insert(out.end(), j + 1, static_cast<float>(r * 10 + j));
      expect.insert(expect.end(), r + 1, static_cast<float>(j * 10 + r));
    }
    Tensor ta = on_dev(out), tb = on_dev(std::vector<float>(expect.size(), -1));
    if (nb)
      c->iall_to_all_v(comm_buffer(ta), sc, comm_buffer(tb), rc, DType::F32)->wait();
    else
      c->all_to_all_v(comm_buffer(ta), sc, comm_buffer(tb), rc, DType::F32);
    EXPECT_EQ(host(tb), expect);
    // a ring: send to r + 1, receive from r − 1
    Tensor ping = on_dev({static_cast<float>(r)}), pong = on_dev({-1.0f});
    int next = (r + 1) % n, prev = (r + n - 1) % n;
    if (nb) {
      auto rq = c->irecv(comm_buffer(pong), 1, DType::F32, prev, 5);
      c->isend(comm_buffer(ping), 1, DType::F32, next, 5)->wait();
      rq->wait();
    } else if (n == 1) {  // a blocking send to oneself would wait for its own receive (NCCL)
      continue;
    } else if (r % 2 == 0) {
      c->send(comm_buffer(ping), 1, DType::F32, next, 5);
      c->recv(comm_buffer(pong), 1, DType::F32, prev, 5);
    } else {
      c->recv(comm_buffer(pong), 1, DType::F32, prev, 5);
      c->send(comm_buffer(ping), 1, DType::F32, next, 5);
    }
    EXPECT_EQ(host(pong), std::vector<float>({static_cast<float>(prev)}));
  }
}

TEST(EpDispatch, RowExchangeBackwardIsTheReverseExchange) {
  auto c = world();
  int r = c->rank(), n = c->size();
  std::vector<int64_t> send_rows(n), recv_rows(n);
  for (int d = 0; d < n; ++d) send_rows[d] = (r + d) % 2 + 1, recv_rows[d] = (d + r) % 2 + 1;
  int64_t rows = std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0});
  Rng rng(17 + r);
  Tensor x = Tensor::randn({rows, 3}, rng, 1.0, DType::F64).set_requires_grad(true);
  Tensor y = all_to_all_rows(x, send_rows, recv_rows, *c);
  Tensor w = Tensor::randn(y.shape(), rng, 1.0, DType::F64);
  sum(mul(y, w)).backward();
  // Expected: the w rows this rank's x rows landed against, fetched by the reverse exchange.
  Tensor back = all_to_all_rows(w, recv_rows, send_rows, *c);
  auto g = x.grad().to_vector<double>(), e = back.to_vector<double>();
  ASSERT_EQ(g.size(), e.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i], e[i]);
  // And forward: rows arrive grouped by source in rank order.
  auto xs = x.to_vector<double>();
  Tensor again = all_to_all_rows(x.detach(), send_rows, recv_rows, *c);
  Tensor round_trip = all_to_all_rows(again, recv_rows, send_rows, *c);
  EXPECT_EQ(round_trip.to_vector<double>(), xs);
}

// A node that runs a check when its backward runs (and passes the gradient through).
struct Probe : Node {
  const char* name() const override { return "Probe"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    check();
    return {dout};
  }
  std::function<void()> check;
};

// Overlap in the backward (parallel/README.md "Overlap"): the reverse exchange starts as soon as the
// gradient of the received rows is complete, other ready work runs while it travels, and only
// then is it waited for. The probe, on a branch of its own, sees the exchange started (one more
// all-to-all recorded) and x's gradient not yet delivered.
TEST(EpDispatch, RowExchangeBackwardOverlapsOtherWork) {
  auto c = world();
  int r = c->rank(), n = c->size();
  std::vector<int64_t> send_rows(n, 2), recv_rows(n, 2);
  Rng rng(5 + r);
  Tensor x = Tensor::randn({2 * n, 3}, rng, 1.0, DType::F64).set_requires_grad(true);
  Tensor v = Tensor::randn({4}, rng, 1.0, DType::F64).set_requires_grad(true);
  RowsInFlight in_flight = all_to_all_rows_start(x, send_rows, recv_rows, *c);
  Tensor y = in_flight.wait();
  int64_t started_before = c->stats().calls["all_to_all"];
  bool probed = false;
  auto probe = std::make_shared<Probe>();
  probe->check = [&] {
    probed = true;
    EXPECT_EQ(c->stats().calls["all_to_all"], started_before + 1) << "the reverse exchange had not started";
    EXPECT_FALSE(x.grad().defined()) << "the reverse exchange was waited for before the other branch ran";
  };
  Tensor u = v.detach().clone();
  connect(u, probe, {v});
  sum(add(sum(u), sum(mul(y, y)))).backward();
  EXPECT_TRUE(probed);
  // The gradient is still the reverse exchange of 2y.
  Tensor expect = all_to_all_rows(scale(y.detach(), 2.0), recv_rows, send_rows, *c);
  EXPECT_EQ(x.grad().to_vector<double>(), expect.to_vector<double>());
  EXPECT_THROW(in_flight.wait(), Error);  // waited for already
}

}  // namespace
}  // namespace mlamoe

int main(int argc, char** argv) {
  mlamoe::MpiRuntime mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  auto c = mlamoe::mpi_world_communicator();
  int64_t any = failed;
  c->all_reduce(&any, 1, mlamoe::DType::I64, mlamoe::ReduceOp::Max);
  return any != 0;
}
