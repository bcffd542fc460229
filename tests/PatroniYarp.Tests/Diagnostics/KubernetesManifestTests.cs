using YamlDotNet.RepresentationModel;

namespace PatroniYarp.Tests.Diagnostics;

/// <summary>deploy/kubernetes/*.yaml: valid YAML with the fields the deployment relies on, consistent with each other.</summary>
public class KubernetesManifestTests
{
    private static readonly string Directory = Path.Combine(RepoRoot(), "deploy", "kubernetes");

    [Fact]
    public void Manifests_EveryFile_ParsesAsYaml()
    {
        var files = System.IO.Directory.GetFiles(Directory, "*.yaml");

        Assert.NotEmpty(files);
        Assert.All(files, file => Assert.NotEmpty(Load(file)));
    }

    [Fact]
    public void Deployment_SeveralReplicasNonRootProbesOnHealthz()
    {
        var deployment = Single("Deployment");
        var pod = Node(deployment, "spec", "template", "spec");
        var container = (YamlMappingNode)Assert.Single(Sequence(pod, "containers"));

        Assert.True(int.Parse(Scalar(deployment, "spec", "replicas")) >= 2);
        Assert.Equal("true", Scalar(pod, "securityContext", "runAsNonRoot"));
        Assert.Equal("/healthz", Scalar(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/healthz", Scalar(container, "startupProbe", "httpGet", "path"));
        Assert.Equal("/healthz/live", Scalar(container, "livenessProbe", "httpGet", "path"));
        Assert.Equal("admin", Scalar(container, "readinessProbe", "httpGet", "port"));
        Assert.Contains(Sequence(container, "ports"), p => Scalar(p, "name") == "admin" && Scalar(p, "containerPort") == "8009");
        var mount = Assert.Single(Sequence(container, "volumeMounts"), m => Scalar(m, "mountPath") == "/etc/patroniyarp");
        var volume = Assert.Single(Sequence(pod, "volumes"), v => Scalar(v, "name") == Scalar(mount, "name"));
        Assert.Equal(Scalar(Single("ConfigMap"), "metadata", "name"), Scalar(volume, "configMap", "name"));
    }

    [Fact]
    public void ConfigMap_PatroniYaml_ListensOnAllInterfacesWithDrainBelowGracePeriod()
    {
        var config = (YamlMappingNode)Parse(Scalar(Single("ConfigMap"), "data", "patroni.yaml"));
        var grace = int.Parse(Scalar(Single("Deployment"), "spec", "template", "spec", "terminationGracePeriodSeconds"));

        Assert.Equal("0.0.0.0:8009", Scalar(config, "listen_address"));
        Assert.True(double.Parse(Scalar(config, "drain_timeout"), System.Globalization.CultureInfo.InvariantCulture) < grace);
        Assert.NotEmpty(((YamlMappingNode)config["clusters"]).Children);
    }

    [Fact]
    public void ServiceAndPodDisruptionBudget_SelectTheDeploymentsPods()
    {
        var labels = (YamlMappingNode)Node(Single("Deployment"), "spec", "template", "metadata", "labels");
        var containerPorts = Sequence(Node(Single("Deployment"), "spec", "template", "spec"), "containers")
            .SelectMany(c => Sequence(c, "ports")).Select(p => Scalar(p, "name")).ToList();
        var service = Single("Service");
        var budget = Single("PodDisruptionBudget");

        Assert.All(((YamlMappingNode)Node(service, "spec", "selector")).Children, l => Assert.Equal(l.Value, labels[l.Key]));
        Assert.All(((YamlMappingNode)Node(budget, "spec", "selector", "matchLabels")).Children, l => Assert.Equal(l.Value, labels[l.Key]));
        Assert.All(Sequence(service, "spec", "ports"), p => Assert.Contains(Scalar(p, "targetPort"), containerPorts));
        Assert.Equal("1", Scalar(budget, "spec", "maxUnavailable"));
    }

    private static YamlMappingNode Single(string kind) =>
        Assert.Single(System.IO.Directory.GetFiles(Directory, "*.yaml").SelectMany(Load).OfType<YamlMappingNode>(),
            d => d.Children.TryGetValue("kind", out var k) && k.ToString() == kind);

    private static List<YamlNode> Load(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(file);
        stream.Load(reader);
        return [.. stream.Documents.Select(d => d.RootNode)];
    }

    private static YamlNode Parse(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream.Documents[0].RootNode;
    }

    private static YamlNode Node(YamlNode node, params string[] path)
    {
        YamlNode current = node;
        foreach (var key in path)
        {
            Assert.True(((YamlMappingNode)current).Children.TryGetValue(key, out var next), $"missing '{string.Join('.', path)}'");
            current = next!;
        }
        return current;
    }

    private static string Scalar(YamlNode node, params string[] path) => ((YamlScalarNode)Node(node, path)).Value!;

    private static IReadOnlyList<YamlNode> Sequence(YamlNode node, params string[] path) => ((YamlSequenceNode)Node(node, path)).Children.ToList();

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PatroniYarp.sln")))
            {
                return dir.FullName;
            }
        }
        throw new DirectoryNotFoundException("PatroniYarp.sln not found above " + AppContext.BaseDirectory);
    }
}
