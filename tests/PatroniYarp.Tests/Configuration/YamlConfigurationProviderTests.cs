using Microsoft.Extensions.Configuration;
using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class YamlConfigurationProviderTests : IDisposable
{
    private readonly TempConfigDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private IConfigurationRoot Load(string yaml) =>
        new ConfigurationBuilder().AddYamlFile(_dir.Write("patroni.yaml", yaml)).Build();

    [Fact]
    public void Load_NestedMappingsAndSequences_FlattensToConfigurationKeys()
    {
        var configuration = Load("""
            a:
              b:
                c: deep
            list: [x, y]
            blocks:
              - name: first
              - name: second
            """);

        Assert.Equal("deep", configuration["a:b:c"]);
        Assert.Equal("x", configuration["list:0"]);
        Assert.Equal("y", configuration["list:1"]);
        Assert.Equal("first", configuration["blocks:0:name"]);
        Assert.Equal("second", configuration["blocks:1:name"]);
    }

    [Fact]
    public void Load_Scalars_KeepTheirText()
    {
        var configuration = Load("""
            yes_flag: true
            no_flag: false
            number: 016
            quoted: "  spaced: text # not a comment "
            single: 'it''s'
            quoted_null: "null"
            tagged_null: !!str null
            """);

        Assert.Equal("true", configuration["yes_flag"]);
        Assert.Equal("false", configuration["no_flag"]);
        Assert.Equal("016", configuration["number"]);
        Assert.Equal("  spaced: text # not a comment ", configuration["quoted"]);
        Assert.Equal("it's", configuration["single"]);
        Assert.Equal("null", configuration["quoted_null"]);
        Assert.Equal("null", configuration["tagged_null"]);
    }

    [Fact]
    public void Load_NullValues_BecomeNullKeys()
    {
        var configuration = Load("""
            tilde: ~
            word: null
            empty:
            empty_list: []
            empty_map: {}
            """);

        var keys = configuration.AsEnumerable().ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var key in new[] { "tilde", "word", "empty", "empty_list", "empty_map" })
        {
            Assert.True(keys.ContainsKey(key), key);
            Assert.Null(keys[key]);
        }
    }

    [Fact]
    public void Load_EmptyFile_YieldsNoKeys()
    {
        Assert.Empty(Load("").AsEnumerable());
        Assert.Empty(Load("# only a comment\n").AsEnumerable());
    }

    [Fact]
    public void Load_MissingOptionalFile_YieldsNoKeys()
    {
        var configuration = new ConfigurationBuilder().AddYamlFile(Path.Combine(_dir.Path, "absent.yaml"), optional: true).Build();

        Assert.Empty(configuration.AsEnumerable());
    }

    [Fact]
    public void Load_MissingRequiredFile_Throws()
    {
        Assert.Throws<FileNotFoundException>(() => new ConfigurationBuilder().AddYamlFile(Path.Combine(_dir.Path, "absent.yaml")).Build());
    }

    [Theory]
    [InlineData("a: 'unclosed\n", "line 1, column 4")]
    [InlineData("a:\n  - x\n - y\n", "line 3, column 2")]
    [InlineData("a: [1, 2\nb: 3\n", "line 1")]
    [InlineData("a: 1\na: 2\n", "line 2, column 1")]
    [InlineData("hosts: 1\nHosts: 2\n", "line 2, column 8")]
    [InlineData("- a\n- b\n", "line 1, column 1")]
    public void Load_InvalidYaml_ThrowsFormatExceptionNamingFileLineAndColumn(string yaml, string position)
    {
        var ex = Assert.Throws<InvalidDataException>(() => Load(yaml));

        var format = Assert.IsType<FormatException>(ex.InnerException);
        Assert.StartsWith("patroni.yaml: ", format.Message);
        Assert.Contains(position, format.Message);
    }

    [Fact]
    public void Load_ReloadOnChangeAndOptional_WorkAsForJson()
    {
        var source = new YamlConfigurationSource { Path = "x.yaml", Optional = true, ReloadOnChange = true };

        Assert.True(source.ReloadOnChange);
        Assert.IsAssignableFrom<FileConfigurationSource>(source);
        Assert.IsAssignableFrom<FileConfigurationProvider>(source.Build(new ConfigurationBuilder().SetBasePath(_dir.Path)));
    }
}
