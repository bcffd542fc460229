using System.Text;
using PatroniYarp.Patroni;

namespace PatroniYarp.Tests.Patroni;

public sealed class ClusterJsonParserTests
{
    private static ClusterParseResult ParseSample(string file) =>
        ClusterJsonParser.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Patroni", "Samples", file)));

    private static ClusterParseResult Parse(string json) => ClusterJsonParser.Parse(Encoding.UTF8.GetBytes(json));

    private static PatroniMember Member(ClusterParseResult result, string name) => Assert.Single(result.Members, m => m.Name == name);

    [Fact]
    public void Parse_Patroni302Sync_ReadsLeaderSyncStandbyAndReplica()
    {
        var result = ParseSample("cluster-patroni-3.0.2-sync.json");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(3, result.Members.Count);
        Assert.False(result.Paused);
        var leader = Member(result, "pg1");
        Assert.Equal(MemberRole.Leader, leader.Role);
        Assert.Equal(("127.0.0.1", 5431), (leader.Host, leader.Port));
        Assert.Null(leader.LagBytes);
        Assert.Equal(7, leader.Timeline);
        Assert.Equal("http://127.0.0.1:8001/patroni", leader.ApiUrl);
        Assert.Equal(MemberRole.SyncStandby, Member(result, "pg0").Role);
        Assert.Equal(0, Member(result, "pg0").LagBytes);
        Assert.Equal(MemberRole.Replica, Member(result, "pg2").Role);
        Assert.All(result.Members, m => Assert.True(m.CanServe));
    }

    [Fact]
    public void Parse_Patroni41Shape_ToleratesUnknownLagStringTagsMissingHostAndPause()
    {
        var result = ParseSample("cluster-patroni-4.1-shape.json");

        Assert.True(result.IsSuccess, result.Error);
        Assert.True(result.Paused);
        Assert.Equal(3, result.Members.Count);
        Assert.Equal(1, result.SkippedMembers);
        Assert.DoesNotContain(result.Members, m => m.Name == "patroni4");

        var leader = Member(result, "patroni1");
        Assert.Equal("true", leader.Tags["clonefrom"]);
        var quorum = Member(result, "patroni2");
        Assert.Equal(MemberRole.QuorumStandby, quorum.Role);
        Assert.Equal("streaming", quorum.State);
        Assert.Equal(0, quorum.LagBytes);
        var archive = Member(result, "patroni3");
        Assert.Null(archive.LagBytes);
        Assert.True(archive.NoLoadBalance);
        Assert.Equal("1", archive.Tags["failover_priority"]);
        Assert.True(archive.CanServe);
    }

    [Fact]
    public void Parse_Patroni33Streaming_ReadsStreamingReplicasLagAndStringTags()
    {
        var result = ParseSample("cluster-patroni-3.3-streaming.json");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(4, result.Members.Count);
        Assert.Equal("false", Member(result, "node1").Tags["nofailover"]);
        Assert.False(Member(result, "node1").NoLoadBalance);
        Assert.True(Member(result, "node2").CanServe);
        var lagging = Member(result, "node3");
        Assert.Equal(16777216, lagging.LagBytes);
        Assert.True(lagging.NoLoadBalance);
        Assert.Equal("node2", lagging.Tags["replicatefrom"]);
        var creating = Member(result, "node4");
        Assert.False(creating.CanServe);
        Assert.Null(creating.LagBytes);
    }

    [Fact]
    public void Parse_Patroni40Quorum_ReadsQuorumStandbysPauseIpv6AndIgnoresUnknownFields()
    {
        var result = ParseSample("cluster-patroni-4.0-quorum.json");

        Assert.True(result.IsSuccess, result.Error);
        Assert.True(result.Paused);
        Assert.Equal(3, result.Members.Count);
        Assert.Equal(1, result.SkippedMembers);
        Assert.Equal(2, result.Members.Count(m => m.Role == MemberRole.QuorumStandby));
        Assert.Equal("2", Member(result, "pg-a").Tags["failover_priority"]);
        Assert.Equal(1024, Member(result, "pg-b").LagBytes);
        Assert.Equal("{\"zone\": \"b\"}", Member(result, "pg-b").Tags["custom"]);
        var ipv6 = Member(result, "pg-c");
        Assert.Equal(("fd00::3", 5433), (ipv6.Host, ipv6.Port));
        Assert.Null(ipv6.LagBytes);
    }

    [Fact]
    public void Parse_OldMasterRole_IsLeader()
    {
        var result = ParseSample("cluster-patroni-2.1-master.json");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(MemberRole.Leader, Member(result, "old1").Role);
    }

    [Fact]
    public void Parse_StandbyCluster_ReadsStandbyLeader()
    {
        var result = ParseSample("standby-cluster.json");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(MemberRole.StandbyLeader, Member(result, "dr1").Role);
        Assert.False(Member(result, "dr1").IsLeader);
    }

    [Fact]
    public void Parse_UnknownRoleAndMissingState_KeepsMemberAsUnknownThatCannotServe()
    {
        var result = Parse("""{"members":[{"name":"x","role":"witness","host":"h","port":5432}]}""");

        Assert.True(result.IsSuccess, result.Error);
        var member = Assert.Single(result.Members);
        Assert.Equal(MemberRole.Unknown, member.Role);
        Assert.False(member.CanServe);
    }

    [Fact]
    public void Parse_NullHostOrPortAndEmptyMembers_SkipsMemberAndSucceeds()
    {
        var result = Parse("""{"members":[{"name":"a","host":null,"port":5432},{"name":"b","host":"h","port":null},{"name":"c","host":"","port":1}]}""");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Empty(result.Members);
        Assert.Equal(3, result.SkippedMembers);
        Assert.True(Parse("""{"members":[]}""").IsSuccess);
    }

    [Theory]
    [InlineData("not json at all", "not valid JSON")]
    [InlineData("", "not valid JSON")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":5432}""", "not valid JSON")]
    [InlineData("""[{"name":"a"}]""", "not an object")]
    [InlineData("""{"scope":"demo"}""", "'members' is missing")]
    [InlineData("""{"members":{"name":"a"}}""", "not an array")]
    [InlineData("""{"members":null}""", "not an array")]
    [InlineData("""{"members":["a"]}""", "members[0] is a string")]
    [InlineData("""{"members":[{"host":"h","port":5432}]}""", "members[0].name")]
    [InlineData("""{"members":[{"name":7,"host":"h","port":5432}]}""", "members[0].name")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":"5432"}]}""", "port is not an integer")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":5432.5}]}""", "port is not an integer")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":-5432}]}""", "port -5432 is outside")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":0}]}""", "port 0 is outside")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":65536}]}""", "port 65536 is outside")]
    [InlineData("""{"members":[{"name":"a","host":5,"port":5432}]}""", "host is a number")]
    [InlineData("""{"members":[{"name":"a","role":true,"host":"h","port":5432}]}""", "role is a boolean")]
    [InlineData("""{"members":[{"name":"a","state":[],"host":"h","port":5432}]}""", "state is a array")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":1},{"name":"a","host":"i","port":2}]}""", "'a' appears more than once")]
    [InlineData("""{"members":[{"name":"a","host":"h","port":1},{"name":"a"}]}""", "'a' appears more than once")]
    [InlineData("""{"members":[{"name":"\uD800","host":"h","port":1}]}""", "not valid JSON")]
    public void Parse_BrokenAnswer_IsRejectedWholeWithReason(string json, string reason)
    {
        var result = Parse(json);

        Assert.False(result.IsSuccess);
        Assert.Empty(result.Members);
        Assert.Contains(reason, result.Error);
    }

    [Fact]
    public void Parse_DeeplyNested_IsRejected()
    {
        var json = "{\"members\":[], \"x\":" + new string('[', 500) + new string(']', 500) + "}";

        Assert.False(Parse(json).IsSuccess);
    }

    [Fact]
    public void Parse_OverLimit_IsRejected()
    {
        var result = ClusterJsonParser.Parse(Encoding.UTF8.GetBytes("""{"members":[]}"""), maxBytes: 10);

        Assert.False(result.IsSuccess);
        Assert.Contains("larger than 10 bytes", result.Error);
    }

    [Fact]
    public async Task ReadAsync_EndlessBody_StopsAtLimitWithoutReadingTheRest()
    {
        using var body = new EndlessStream();

        var result = await ClusterJsonParser.ReadAsync(body, ClusterJsonParser.DefaultMaxBytes, CancellationToken.None);

        Assert.False(result.IsSuccess);
        Assert.Contains("larger than 1048576 bytes", result.Error);
        Assert.InRange(body.BytesRead, ClusterJsonParser.DefaultMaxBytes + 1, ClusterJsonParser.DefaultMaxBytes + 64 * 1024);
    }

    [Fact]
    public async Task ReadAsync_SmallChunks_ParsesWholeAnswer()
    {
        var json = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Patroni", "Samples", "cluster-patroni-4.1-shape.json"));
        using var body = new TrickleStream(json);

        var result = await ClusterJsonParser.ReadAsync(body, ClusterJsonParser.DefaultMaxBytes, CancellationToken.None);

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(3, result.Members.Count);
    }

    /// <summary>A body that never ends: ' ' forever (valid JSON whitespace, so only the limit can stop it).</summary>
    private sealed class EndlessStream : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            buffer.AsSpan(offset, count).Fill((byte)' ');
            BytesRead += count;
            return count;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Hands out at most 7 bytes per read, as a slow network might.</summary>
    private sealed class TrickleStream(byte[] data) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, 7));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, 7)], cancellationToken);
    }
}
