// The MPI implementation of Communicator: only the *_impl functions (communicator.h's front has
// validated the arguments, recorded the bytes and, around a blocking call, told the collective
// watchdog what the rank waits in). Counts above 2^31 elements are not split: MPI's counts and
// displacements are int, so count_limit() is INT32_MAX and the front rejects a larger count or
// displacement with a message; a single message of that size is far beyond what one step sends.
// The one wait the front cannot see is the one in a request's destructor: MpiRequest brackets it.
// Buffers in CUDA device memory go through host copies (host_staging.h): staged in before the
// call, written back after it (for a non-blocking call, when its request completes).
#include <mpi.h>

#include <numeric>

#include "model/tensor/error.h"
#include "parallel/communicator.h"
#include "parallel/host_staging.h"
#include "parallel/mpi_types.h"
#include "parallel/watchdog.h"

namespace mlamoe {

namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(std::string("MPI ") + what + " failed: " + std::string(msg, len));
  }
}

int64_t total(const std::vector<int64_t>& counts) { return std::accumulate(counts.begin(), counts.end(), int64_t{0}); }

class MpiRequest final : public Request {
 public:
  // Counts and displacements of a v-collective must outlive it: the request keeps them.
  std::vector<int> keep[4];
  // The host copies of device buffers (host_staging.h), and which of them receive data.
  std::vector<HostStage> stages;
  std::vector<size_t> received;
  ~MpiRequest() override {
    if (req_ != MPI_REQUEST_NULL) {
      BlockingCall blocked(watched());
      MPI_Wait(&req_, MPI_STATUS_IGNORE);
      try {
        write_back();
      } catch (const Error&) {  // a destructor must not throw; an explicit wait() reports it
      }
    }
  }
  MPI_Request* handle() { return &req_; }
  // Stages a buffer for the operation (call before starting it); returns the pointer MPI takes.
  void* stage(const void* p, size_t bytes, bool in, bool out) {
    stages.emplace_back(p, bytes, in);
    if (out) received.push_back(stages.size() - 1);
    return stages.back().host();
  }

 protected:
  void wait_impl() override {
    check(MPI_Wait(&req_, MPI_STATUS_IGNORE), "wait");
    write_back();
  }

 private:
  void write_back() {
    for (size_t i : received) stages[i].copy_out();
    received.clear();
  }
  MPI_Request req_ = MPI_REQUEST_NULL;
};

// counts (validated by the front: every count and displacement fits an int) as MPI's int counts
// and displacements, written into c and d (resized: no allocation once their capacity suffices).
void to_mpi_counts(const std::vector<int64_t>& counts, std::vector<int>& c, std::vector<int>& d) {
  c.resize(counts.size());
  d.resize(counts.size());
  int64_t displacement = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    c[i] = static_cast<int>(counts[i]);
    d[i] = static_cast<int>(displacement);
    displacement += counts[i];
  }
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // Errors come back as codes (turned into mlamoe::Error) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    register_members(world_ranks_of(comm_));  // as world ranks, for the watchdog's report and for naming a send/recv peer
    set_name(comm == MPI_COMM_WORLD ? "world" : "group");
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string transport() const override { return "MPI"; }

 protected:
  int64_t count_limit() const override { return INT32_MAX; }

  // Scalar counts: the front checked count <= count_limit(), so the int conversions are exact.
  void all_reduce_impl(void* buf, int64_t count, DType dt, ReduceOp op) override {
    HostStage b(buf, bytes_of(count, dt), true);
    check(MPI_Allreduce(MPI_IN_PLACE, b.host(), static_cast<int>(count), mpi_type(dt), mpi_op(op), comm_), "all_reduce");
    b.copy_out();
  }
  std::unique_ptr<Request> iall_reduce_impl(void* buf, int64_t count, DType dt, ReduceOp op) override {
    auto r = std::make_unique<MpiRequest>();
    void* b = r->stage(buf, bytes_of(count, dt), true, true);
    check(MPI_Iallreduce(MPI_IN_PLACE, b, static_cast<int>(count), mpi_type(dt), mpi_op(op), comm_, r->handle()), "iall_reduce");
    return r;
  }
  void reduce_scatter_impl(const void* send, void* recv, int64_t recv_count, DType dt) override {
    HostStage s(send, bytes_of(recv_count * size_, dt), true), d(recv, bytes_of(recv_count, dt), false);
    check(MPI_Reduce_scatter_block(s.host(), d.host(), static_cast<int>(recv_count), mpi_type(dt), MPI_SUM, comm_),
          "reduce_scatter");
    d.copy_out();
  }
  std::unique_ptr<Request> ireduce_scatter_impl(const void* send, void* recv, int64_t recv_count, DType dt) override {
    auto r = std::make_unique<MpiRequest>();
    void* s = r->stage(send, bytes_of(recv_count * size_, dt), true, false);
    void* d = r->stage(recv, bytes_of(recv_count, dt), false, true);
    check(MPI_Ireduce_scatter_block(s, d, static_cast<int>(recv_count), mpi_type(dt), MPI_SUM, comm_, r->handle()),
          "ireduce_scatter");
    return r;
  }
  // v-collectives: MPI takes int counts and displacements, so the int64 counts are converted —
  // for a blocking call into member scratch vectors reused across calls (no allocation in the
  // steady state); for a non-blocking one into vectors the request owns, since MPI reads them
  // until the operation completes.
  void all_gather_v_impl(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) override {
    to_mpi_counts(counts, scratch_[0], scratch_[1]);
    HostStage s(send, bytes_of(counts[rank_], dt), true), d(recv, bytes_of(total(counts), dt), false);
    check(MPI_Allgatherv(s.host(), scratch_[0][rank_], mpi_type(dt), d.host(), scratch_[0].data(), scratch_[1].data(),
                         mpi_type(dt), comm_),
          "all_gather_v");
    d.copy_out();
  }
  std::unique_ptr<Request> iall_gather_v_impl(const void* send, void* recv, const std::vector<int64_t>& counts,
                                              DType dt) override {
    auto r = std::make_unique<MpiRequest>();
    to_mpi_counts(counts, r->keep[0], r->keep[1]);
    void* s = r->stage(send, bytes_of(counts[rank_], dt), true, false);
    void* d = r->stage(recv, bytes_of(total(counts), dt), false, true);
    check(MPI_Iallgatherv(s, r->keep[0][rank_], mpi_type(dt), d, r->keep[0].data(), r->keep[1].data(), mpi_type(dt), comm_,
                          r->handle()),
          "iall_gather_v");
    return r;
  }
  void all_to_all_v_impl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                         const std::vector<int64_t>& recv_counts, DType dt) override {
    to_mpi_counts(send_counts, scratch_[0], scratch_[1]);
    to_mpi_counts(recv_counts, scratch_[2], scratch_[3]);
    HostStage s(send, bytes_of(total(send_counts), dt), true), d(recv, bytes_of(total(recv_counts), dt), false);
    check(MPI_Alltoallv(s.host(), scratch_[0].data(), scratch_[1].data(), mpi_type(dt), d.host(), scratch_[2].data(),
                        scratch_[3].data(), mpi_type(dt), comm_),
          "all_to_all_v");
    d.copy_out();
  }
  std::unique_ptr<Request> iall_to_all_v_impl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                              const std::vector<int64_t>& recv_counts, DType dt) override {
    auto r = std::make_unique<MpiRequest>();
    to_mpi_counts(send_counts, r->keep[0], r->keep[1]);
    to_mpi_counts(recv_counts, r->keep[2], r->keep[3]);
    void* s = r->stage(send, bytes_of(total(send_counts), dt), true, false);
    void* d = r->stage(recv, bytes_of(total(recv_counts), dt), false, true);
    check(MPI_Ialltoallv(s, r->keep[0].data(), r->keep[1].data(), mpi_type(dt), d, r->keep[2].data(), r->keep[3].data(),
                         mpi_type(dt), comm_, r->handle()),
          "iall_to_all_v");
    return r;
  }
  void broadcast_impl(void* buf, int64_t count, DType dt, int root) override {
    HostStage b(buf, bytes_of(count, dt), rank_ == root);
    check(MPI_Bcast(b.host(), static_cast<int>(count), mpi_type(dt), root, comm_), "broadcast");
    if (rank_ != root) b.copy_out();
  }
  std::unique_ptr<Request> ibroadcast_impl(void* buf, int64_t count, DType dt, int root) override {
    auto r = std::make_unique<MpiRequest>();
    void* b = r->stage(buf, bytes_of(count, dt), rank_ == root, rank_ != root);
    check(MPI_Ibcast(b, static_cast<int>(count), mpi_type(dt), root, comm_, r->handle()), "ibroadcast");
    return r;
  }
  void send_impl(const void* buf, int64_t count, DType dt, int dest, int tag) override {
    HostStage b(buf, bytes_of(count, dt), true);
    check(MPI_Send(b.host(), static_cast<int>(count), mpi_type(dt), dest, tag, comm_), "send");
  }
  void recv_impl(void* buf, int64_t count, DType dt, int source, int tag) override {
    HostStage b(buf, bytes_of(count, dt), false);
    check(MPI_Recv(b.host(), static_cast<int>(count), mpi_type(dt), source, tag, comm_, MPI_STATUS_IGNORE), "recv");
    b.copy_out();
  }
  std::unique_ptr<Request> isend_impl(const void* buf, int64_t count, DType dt, int dest, int tag) override {
    auto r = std::make_unique<MpiRequest>();
    void* b = r->stage(buf, bytes_of(count, dt), true, false);
    check(MPI_Isend(b, static_cast<int>(count), mpi_type(dt), dest, tag, comm_, r->handle()), "isend");
    return r;
  }
  std::unique_ptr<Request> irecv_impl(void* buf, int64_t count, DType dt, int source, int tag) override {
    auto r = std::make_unique<MpiRequest>();
    void* b = r->stage(buf, bytes_of(count, dt), false, true);
    check(MPI_Irecv(b, static_cast<int>(count), mpi_type(dt), source, tag, comm_, r->handle()), "irecv");
    return r;
  }
  void barrier_impl() override { check(MPI_Barrier(comm_), "barrier"); }
  std::unique_ptr<Request> ibarrier_impl() override {
    auto r = std::make_unique<MpiRequest>();
    check(MPI_Ibarrier(comm_, r->handle()), "ibarrier");
    return r;
  }
  std::unique_ptr<Communicator> split_impl(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "comm_split");
    return std::make_unique<MpiCommunicator>(sub, true);
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::vector<int> scratch_[4];  // blocking v-collectives: send counts, send displacements, recv counts, recv displacements
};

}  // namespace

std::unique_ptr<Communicator> mpi_world_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false); }

}  // namespace mlamoe
